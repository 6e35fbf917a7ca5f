"""The Flask application: `create_app()` builds everything; nothing at import time."""
from __future__ import annotations

import logging
import threading

from flask import Flask, g, jsonify, request
from werkzeug.middleware.proxy_fix import ProxyFix

from bot import intake, jobs, metrics, redisconn, runtime
from bot.config import Config
from bot.redisconn import UNAVAILABLE
from handlers import BLUEPRINTS
from handlers import common
from handlers.common import WebState
from web import admin

log = logging.getLogger("hotline.web")


def create_app(config: Config | None = None, *, maintenance: bool = True) -> Flask:
    """Build the web app. Refuses to start with broken settings or templates."""
    config, settings, templates = runtime.load(config)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    if config.proxy_hops:
        # Behind a load balancer every request comes from its address: the console's
        # slowing of failed sign-ins (per address) needs the client's, which the proxies
        # add to X-Forwarded-For. Trusted only from that many hops, so it cannot be forged.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=config.proxy_hops, x_proto=config.proxy_hops)
    conn = redisconn.connect(config.redis_url, timeout=config.web_redis_timeout)
    app.extensions["hotline"] = WebState(config=config, redis=conn, settings=settings,
                                         templates=templates.attach(conn))
    for bp in BLUEPRINTS:
        app.register_blueprint(bp)
    app.before_request(common.begin_request)
    app.after_request(common.observe)
    app.teardown_request(common.end_request)
    if config.local_mode:
        from web import local

        app.register_blueprint(local.bp)
    admin.init_app(app)
    from web import cli

    app.cli.add_command(cli.hotline)

    @app.errorhandler(413)
    def too_large(_):
        # The limit that applied: a handler may set its own (email.max_bytes) and name it.
        limit = request.max_content_length or config.max_body_bytes
        name = g.get("body_limit_name", "HOTLINE_MAX_BODY_BYTES")
        return jsonify(error="too_large", reason=f"body over {limit} bytes ({name})"), 413

    if maintenance and config.maintenance_interval > 0:
        start_maintenance(app)
    return app


def maintenance_pass(state: WebState) -> None:
    """Forward the spool, re-offer conversations a dead worker left behind, and keep the
    reconciliation chain scheduled (once per slot, whichever process asks)."""
    intake.drain_spool(state.redis, state.config.queue_name, state.config.spool_dir,
                       state.config.urgent_queue_name)
    intake.sweep_stale(state.redis, state.config.queue_name)
    jobs.schedule_reconcile(state.redis, state.config.queue_name, state.settings)
    metrics.flush(state.redis)


def start_maintenance(app: Flask) -> threading.Event:
    """Run `maintenance_pass` in a daemon thread; set the returned event to stop it."""
    state: WebState = app.extensions["hotline"]
    stop = threading.Event()

    def loop():
        while not stop.wait(state.config.maintenance_interval):
            try:
                maintenance_pass(state)
            except UNAVAILABLE:
                pass  # Redis still away; the spool keeps everything
            except Exception:  # the thread must outlive any single bad pass
                log.exception("maintenance.failed")

    threading.Thread(target=loop, name="hotline-maintenance", daemon=True).start()
    app.extensions["hotline_stop"] = stop
    return stop
