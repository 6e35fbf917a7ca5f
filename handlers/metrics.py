"""`GET /metrics`: Prometheus text format (SPEC 11), the totals of every process.

The counts are kept in Redis (`bot.metrics`), so whichever web process is
scraped answers the same. With `METRICS_TOKEN` set, the scrape must send it as
`Authorization: Bearer …` (compared in constant time); otherwise 401.
"""
from __future__ import annotations

import hmac

from flask import Blueprint, Response, request

from bot import metrics
from handlers.common import state

bp = Blueprint("metrics", __name__)


def authorised(token: str) -> bool:
    if not token:
        return True
    sent = request.headers.get("Authorization", "")
    scheme, _, value = sent.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        value.strip().encode("utf-8", "replace"), token.encode())


@bp.get("/metrics")
def scrape():
    st = state()
    if not authorised(st.config.metrics_token):
        return Response("bearer token required\n", status=401, mimetype="text/plain",
                        headers={"WWW-Authenticate": 'Bearer realm="hotline-metrics"'})
    body, content_type = metrics.render(st.redis, st.config.spool_dir)
    return Response(body, content_type=content_type)
