"""`GET /healthz` (the process answers) and `GET /readyz` (Redis answers)."""
from __future__ import annotations

from flask import Blueprint, jsonify

from bot import spool
from bot.redisconn import UNAVAILABLE
from handlers.common import state

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    st = state()
    backlog = len(spool.pending(st.config.spool_dir))
    try:
        st.redis.ping()
    except UNAVAILABLE:
        return jsonify(status="unavailable", redis=False, spooled=backlog), 503
    return jsonify(status="ok", redis=True, spooled=backlog)
