"""Twilio's fields for an inbound text → `InboundMessage`, one translation for both ways in:
the `POST /twilio/sms` webhook's form, and the same fields rebuilt from Twilio's REST
list by reconciliation (`bot.reconcile`), so a recovered text is normalised and
redacted exactly as a webhooked one.
"""
from __future__ import annotations

from bot.events import InboundMessage, Media
from bot.phones import to_e164
from bot.redact import redact

MAX_MEDIA = 10  # Twilio's own limit per message


def message_from_form(form) -> InboundMessage | str:
    """Twilio's inbound-message fields → InboundMessage, or the reason it cannot be one."""
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
