"""STOP, START and HELP (SPEC 10), in the carrier's words or the customer's.

Twilio itself stops delivering to a number that texted STOP to a long code;
Hotline mirrors that so it never tries, and tells the agent on the ticket.
"""
from __future__ import annotations

import time

from bot import delivery, keys, texts

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


def only_keywords(messages) -> bool:
    """Whether every message is a text saying STOP, START or HELP (and nothing else)."""
    return bool(messages) and all(m.kind_of == "text" and keyword(m) for m in messages)


def flag(rt, phone: str, messages) -> list[list[str]]:
    """Before anything is written: record STOP/START at once (so nothing is sent to a
    number that just said STOP, whatever happens to the ticket write), and return the
    keywords found as [kind, message id, word] for the notes that follow."""
    found = []
    for m in messages:
        kind = keyword(m) if m.kind_of == "text" else None
        if kind == "stop":
            rt.redis.hset(keys.OPTED_OUT, phone, int(time.time()))
        elif kind == "start":
            rt.redis.hdel(keys.OPTED_OUT, phone)
        if kind:
            found.append([kind, m.provider_id, (m.body or kind).strip()[:20]])
    return found


def replies(found: list[list[str]]) -> list[texts.Text]:
    """The texts a batch's keywords call for (HELP gets the help template)."""
    return [texts.help_reply(provider_id) for kind, provider_id, _ in found if kind == "help"]


def apply(rt, ticket_id: int, found: list[list[str]]) -> None:
    """Tag and note a batch's STOP/START on its ticket (idempotent; the opt-out flag
    itself was set by `flag` before the write)."""
    for kind, _, word in found:
        if kind == "stop":
            delivery.note_opt_out(rt, ticket_id, f"texted {word}")
        elif kind == "start":
            delivery.note_opt_in(rt, ticket_id)
