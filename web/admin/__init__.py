"""The operators' console (SPEC 6) under /admin: sign-in, templates and their JSON API,
queues and failed jobs, scheduled follow-ups, the spool, and "try a text".

`init_app` wires it into the app. Without SECRET_KEY (outside local mode, where
`make run` generates one) every /admin URL answers 503 saying so: a guessable
key would let anyone forge an operator's session.
"""
from __future__ import annotations

import logging

from flask import Flask, jsonify

from web.admin import api, auth, pages, queues

log = logging.getLogger("hotline.admin")

NO_SECRET = ("The operators' console is off: SECRET_KEY is not set. Set it to a long random "
             "value (e.g. python3 -c 'import secrets; print(secrets.token_hex(32))') and restart.")


def init_app(app: Flask) -> None:
    """Mount the console on `app`, or a clear 503 when it cannot be made safe."""
    config = app.extensions["hotline"].config
    if not config.secret_key:
        log.warning("admin.disabled-no-secret-key")

        @app.route("/admin", defaults={"rest": ""}, methods=["GET", "POST", "PUT"])
        @app.route("/admin/<path:rest>", methods=["GET", "POST", "PUT"])
        def admin_disabled(rest):
            return jsonify(error="admin_disabled", reason=NO_SECRET), 503
        return
    auth.init_app(app, config)
    app.context_processor(lambda: {"config_local": config.local_mode})
    for bp in (auth.bp, pages.bp, api.bp, queues.bp):
        app.register_blueprint(bp)
    queues.mount_dashboard(app, config)
