"""STOP, START and HELP (SPEC 10), in the carrier's words or the customer's.

Twilio itself stops delivering to a number that texted STOP to a long code;
Hotline mirrors that so it never tries, and tells the agent on the ticket.
"""
from __future__ import annotations

from bot import delivery

STOP = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT",
        "OPT OUT", "PARAR", "BAJA"}
START = {"START", "YES", "UNSTOP", "OPTIN", "OPT IN"}
HELP = {"HELP", "INFO", "AYUDA"}


def keyword(message) -> str | None:
    """`stop`, `start`, `help` or None for a message."""
    carrier = (message.opt_out_type or "").upper()
    word = " ".join((message.body or "").upper().split()).strip(" .!")
    if carrier == "STOP" or word in STOP:
        return "stop"
    if carrier == "START" or word in START:
        return "start"
    if carrier == "HELP" or word in HELP:
        return "help"
    return None


def apply(rt, conv_id: str, ticket_id: int, phone: str, messages) -> None:
    """Act on the keywords among a batch's messages, in order."""
    from bot import jobs

    for m in messages:
        kind = keyword(m)
        if kind == "stop":
            delivery.opt_out(rt, phone, ticket_id, f"texted {m.body.strip() or 'STOP'}")
        elif kind == "start":
            delivery.opt_in(rt, phone, ticket_id)
        elif kind == "help":
            jobs.enqueue_template(rt, conv_id, ticket_id, "sms/help", f"help:{m.provider_id}")
