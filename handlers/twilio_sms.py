"""`POST /twilio/sms`: an inbound SMS or MMS (SPEC 3)."""
from __future__ import annotations

from flask import Blueprint, Response, request
from twilio.twiml.messaging_response import MessagingResponse

from bot import delivery
from bot.phone.twilio_inbound import message_from_form
from bot.redisconn import UNAVAILABLE
from handlers.common import accept, accept_job, bad_request, state
from handlers.twilio_common import twiml, verified

bp = Blueprint("twilio_sms", __name__)

@bp.post("/twilio/sms")
@verified
def inbound_sms():
    message = message_from_form(request.form)  # as reconciliation translates Twilio's records
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
    try:
        known = delivery.is_ours(state().redis, sid)
    except UNAVAILABLE:  # Redis away: accept (spool) and let the job decide
        known = True
    if known:
        accept_job(f"twilio:status:{sid}:{status}", "bot.jobs.delivery_status",
                   sid, status, form.get("ErrorCode", "").strip() or None)
    return Response(status=204)
