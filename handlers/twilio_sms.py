"""`POST /twilio/sms`: an inbound SMS or MMS (SPEC 3)."""
from __future__ import annotations

from flask import Blueprint, Response, request
from twilio.twiml.messaging_response import MessagingResponse

from bot import intake, keys
from bot.events import InboundMessage, Media
from bot.phones import to_e164
from bot.redact import redact
from bot.redisconn import UNAVAILABLE
from handlers.common import accept, bad_request, state
from handlers.twilio_common import twiml, verified

bp = Blueprint("twilio_sms", __name__)

MAX_MEDIA = 10  # Twilio's own limit per message


def normalise(form) -> InboundMessage | str:
    """Twilio's form → InboundMessage, or the reason it cannot be one."""
    missing = [k for k in ("MessageSid", "From") if not form.get(k, "").strip()]
    if missing:
        return f"missing {' and '.join(missing)}"
    sender = to_e164(form["From"])
    if sender is None:
        return "From is not a phone number"
    try:
        count = min(int(form.get("NumMedia", "0") or 0), MAX_MEDIA)
    except ValueError:
        return "NumMedia is not a number"
    media = [Media(url=form[f"MediaUrl{i}"], content_type=form.get(f"MediaContentType{i}", ""))
             for i in range(count) if form.get(f"MediaUrl{i}")]
    location = {k: form.get(f"From{k.title()}", "").strip()
                for k in ("city", "state", "zip", "country")}
    return InboundMessage(
        provider_id=form["MessageSid"].strip(), sender=sender, body=redact(form.get("Body", "")),
        recipient=form.get("To", ""), media=media,
        location={k: v for k, v in location.items() if v},
        opt_out_type=form.get("OptOutType", "").strip().upper())


@bp.post("/twilio/sms")
@verified
def inbound_sms():
    message = normalise(request.form)
    if isinstance(message, str):
        return bad_request(message)
    accept(message)
    # The acknowledgement goes out from the worker once the ticket exists, so
    # it can name the case number; the webhook answers at once with empty TwiML.
    return twiml(MessagingResponse())


@bp.post("/twilio/sms/status")
@verified
def sms_status():
    """Delivery report for a text Hotline sent: one job per sid + status, 204 always."""
    form = request.form
    sid = form.get("MessageSid", "").strip() or form.get("SmsSid", "").strip()
    status = (form.get("MessageStatus", "") or form.get("SmsStatus", "")).strip().lower()
    if not sid or not status:
        return bad_request("missing MessageSid or MessageStatus")
    st = state()
    try:
        known = st.redis.exists(keys.message(sid))
    except UNAVAILABLE:  # Redis away: accept (spool) and let the job decide
        known = True
    if known:
        intake.accept_job(st.redis, st.config.queue_name, st.config.spool_dir,
                          f"twilio:status:{sid}:{status}", "bot.jobs.delivery_status",
                          sid, status, form.get("ErrorCode", "").strip() or None)
    return Response(status=204)
