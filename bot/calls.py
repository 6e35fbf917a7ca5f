"""What a finished call leaves behind (SPEC 8): nothing more when a voicemail was left,
else a "missed call" or an answered emergency call, as an event for the conversation.

The call-status callback only records that the call ended; `call_ended` decides a
little later, because Twilio does not promise that <Record>'s or <Dial>'s own
callbacks arrive before the call-status one.
"""
from __future__ import annotations

import json

from bot import intake, keys
from bot.events import InboundMessage

SETTLE_SECONDS = 20
CALL_TTL = 2 * 24 * 3600
WHY = {"busy": "line busy", "no-answer": "nobody answered", "failed": "call failed",
       "canceled": "caller hung up"}


def state(conn, call_sid: str) -> dict:
    """What Hotline recorded about a call so far (caller, menu choice, voicemail, answered)."""
    return {k.decode(): v.decode() for k, v in conn.hgetall(keys.call(call_sid)).items()}


def remember(conn, call_sid: str, **fields) -> None:
    """Record something about a call in progress (kept two days)."""
    pipe = conn.pipeline()
    pipe.hset(keys.call(call_sid), mapping=fields)
    pipe.expire(keys.call(call_sid), CALL_TTL)
    pipe.execute()


def ended_event(call_sid: str, call: dict) -> InboundMessage | None:
    """The event a finished call calls for, from what Hotline recorded about it."""
    if call.get("recorded"):
        return None  # the voicemail is the ticket's record of the call
    caller = call.get("caller") or f"anon:{call_sid}"
    location = json.loads(call.get("location") or "{}")
    duration = call.get("duration", "0")
    emergency = call.get("choice") == "emergency"
    if call.get("answered"):
        return InboundMessage(
            provider_id=f"{call_sid}:answered", sender=caller, channel="voice",
            kind_of="answered_call", triage_hint="emergency", location=location,
            body=f"Emergency call answered by the on-call specialist ({duration} s).")
    why = "voicemail too short or silent" if call.get("short") else \
        WHY.get(call.get("ended", ""), "no voicemail left")
    return InboundMessage(
        provider_id=f"{call_sid}:missed", sender=caller, channel="voice", kind_of="missed_call",
        triage_hint="emergency" if emergency else "", location=location,
        body=f"Missed call ({why}, {duration} s)"
             + (", the caller chose the emergency option" if emergency else "")
             + (". Hotline texted them to reply by text." if caller.startswith("+")
                else ". The number was withheld."))


def settle(rt, call_sid: str) -> str:
    """Queue what the finished call leaves behind; returns what it was."""
    event = ended_event(call_sid, state(rt.redis, call_sid))
    if event is None:
        return "voicemail"
    intake.accept(rt.redis, rt.config.queue_name, rt.config.spool_dir, event,
                  urgent_queue=rt.config.urgent_queue_name)
    return event.kind_of
