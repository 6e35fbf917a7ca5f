"""`POST /zendesk/events`: Zendesk webhooks — event subscriptions and the trigger body (SPEC 3).

Order, as in every handler: refuse without a secret; verify the HMAC over the
raw bytes and the timestamp's freshness; only then parse. The event is only a
hint: the job re-reads the ticket from Zendesk.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
from datetime import datetime, timezone

from flask import Blueprint, Response, jsonify, request

from bot import tickets
from bot.redisconn import UNAVAILABLE
from handlers.common import accept_job, bad_request, state

log = logging.getLogger("hotline.zendesk")
bp = Blueprint("zendesk", __name__)

MAX_SKEW = 300  # seconds either side of now
SYNC_JOB = "bot.jobs.sync_ticket"
# Event-subscription types that can mean a text for the customer, or change the
# follow-ups Hotline keeps (an agent answered, the status or priority changed).
SYNC_EVENTS = {"zen:event-type:ticket.comment_added", "zen:event-type:ticket.tags_changed",
               "zen:event-type:ticket.status_changed", "zen:event-type:ticket.priority_changed"}


def signature_valid(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """base64(HMAC-SHA256(secret as given, timestamp + raw body)), compared in constant time."""
    digest = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    return hmac.compare_digest(base64.b64encode(digest), signature.strip().encode("utf-8", "replace"))


def fresh(timestamp: str, now: datetime | None = None) -> bool:
    """Whether Zendesk's ISO 8601 timestamp is within MAX_SKEW of now."""
    try:
        when = datetime.fromisoformat(timestamp.strip().replace("Z", "+00:00"))
    except ValueError:
        return False
    if when.tzinfo is None:
        return False
    now = now or datetime.now(timezone.utc)
    return abs((now - when).total_seconds()) <= MAX_SKEW


def _ticket_id(payload: dict) -> int | None:
    """The ticket an event or trigger body is about."""
    for key in ("ticket_id", "ticketID", "ticketId"):
        if str(payload.get(key, "")).strip().isdigit():
            return int(str(payload[key]).strip())
    detail = payload.get("detail") if isinstance(payload.get("detail"), dict) else {}
    if str(detail.get("id", "")).isdigit():
        return int(detail["id"])
    match = re.fullmatch(r"zen:ticket:(\d+)", str(payload.get("subject", "")))
    return int(match.group(1)) if match else None


@bp.post("/zendesk/events")
def events():
    st = state()
    secret = st.config.zendesk_webhook_secret
    body = request.get_data(cache=True)
    timestamp = request.headers.get("X-Zendesk-Webhook-Signature-Timestamp", "")
    signature = request.headers.get("X-Zendesk-Webhook-Signature", "")
    if not secret or not signature or not signature_valid(secret, timestamp, body, signature) \
            or not fresh(timestamp):
        log.warning("zendesk.webhook.invalid-signature")
        return Response("invalid signature\n", status=403, mimetype="text/plain")
    try:
        payload = json.loads(body)
    except ValueError:
        return bad_request("body is not JSON")
    if not isinstance(payload, dict):
        return bad_request("body is not a JSON object")

    kind = str(payload.get("type", ""))
    is_event = kind.startswith("zen:event-type:")
    if is_event and kind not in SYNC_EVENTS:
        return Response(status=204)  # deliberately ignored event type
    ticket_id = _ticket_id(payload)
    if ticket_id is None:
        return bad_request("no ticket id (expected ticket_id, or an event about a ticket)")
    try:
        known = tickets.is_linked(st.redis, ticket_id)
    except UNAVAILABLE:  # Redis away: accept (spool) and let the job decide
        known = True
    if not known:
        return Response(status=204)  # not a text conversation Hotline knows

    # A redelivery repeats the event id (subscriptions) or the invocation id; a
    # trigger body without either is told apart by its signed timestamp, so the
    # same body sent for a later change is not mistaken for a duplicate.
    event_id = payload.get("id") if is_event else None
    event_id = event_id or request.headers.get("X-Zendesk-Webhook-Invocation-Id") \
        or hashlib.sha256(timestamp.encode() + body).hexdigest()
    outcome = accept_job(f"zendesk:event:{event_id}", SYNC_JOB, ticket_id)
    return jsonify(status=outcome.value, ticket_id=ticket_id)
