"""The operators' console (SPEC 6) under /admin: sign-in, templates and their JSON API,
queues and failed jobs, scheduled follow-ups, the spool, and "try a text".

`init_app` wires it into the app. Without SECRET_KEY (outside local mode, where
`make run` generates one) every /admin URL answers 503 saying so: a guessable
key would let anyone forge an operator's session.
"""
from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from markupsafe import escape

from bot.redisconn import UNAVAILABLE
from web.admin import api, auth, pages, queues

log = logging.getLogger("hotline.admin")

NO_SECRET = ("The operators' console is off: SECRET_KEY is not set. Set it to a long random "
             "value (e.g. python3 -c 'import secrets; print(secrets.token_hex(32))') and restart.")


PLAIN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem}}</style>
</head><body><h1>{title}</h1><p>{text}</p></body></html>"""


def redis_unavailable(exc):
    """Accounts, templates and queues all live in Redis: say so rather than 500."""
    log.warning("admin.redis-unavailable", extra={"error": type(exc).__name__})
    reason = "Redis does not answer; try again in a moment."
    if request.blueprint == "admin_api":
        return jsonify(error="unavailable", reason=reason), 503
    # Plain HTML: any rendered template would ask Redis who is signed in.
    return _plain_page("Try again shortly", reason, 503)


def _plain_page(title: str, text: str, status: int):
    return (PLAIN_PAGE.format(title=escape(title), text=escape(text)), status,
            {"Content-Type": "text/html; charset=utf-8"})


for _bp in (auth.bp, pages.bp, api.bp, queues.bp):
    for _exc in UNAVAILABLE:
        _bp.register_error_handler(_exc, redis_unavailable)


def init_app(app: Flask) -> None:
    """Mount the console on `app`, or a clear 503 when it cannot be made safe."""
    config = app.extensions["hotline"].config
    if not config.secret_key:
        @app.route("/admin/", defaults={"rest": ""}, methods=["GET", "POST", "PUT"])
        @app.route("/admin/<path:rest>", methods=["GET", "POST", "PUT"])
        def admin_disabled(rest):
            log.warning("admin.disabled-no-secret-key")
            if request.accept_mimetypes.accept_html and not rest.startswith("api/"):
                return _plain_page("The console is off", NO_SECRET, 503)
            return jsonify(error="admin_disabled", reason=NO_SECRET), 503
        return
    auth.init_app(app, config)
    app.context_processor(lambda: {"config_local": config.local_mode})
    for bp in (auth.bp, pages.bp, api.bp, queues.bp):
        app.register_blueprint(bp)
    queues.mount_dashboard(app, config)
