"""`POST /twilio/sms`: an inbound SMS or MMS (SPEC 3)."""
from __future__ import annotations

from flask import Blueprint, request
from twilio.twiml.messaging_response import MessagingResponse

from bot.events import InboundMessage, Media
from bot.phones import to_e164
from handlers.common import accept, bad_request
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
        provider_id=form["MessageSid"].strip(), sender=sender, body=form.get("Body", ""),
        recipient=form.get("To", ""), media=media,
        location={k: v for k, v in location.items() if v})


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
