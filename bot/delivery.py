"""Outbound texts: opt-out, once-only sending, and what Twilio's delivery reports mean (SPEC 10).

Every text Hotline sends goes through `send_text`, which
- refuses numbers that opted out;
- records the intent before sending, so a send whose outcome is unknown
  (timeout after the request left) is never blindly repeated;
- remembers which ticket a message belongs to, for its status callbacks;
- turns a permanent failure into an internal note on the ticket.
"""
from __future__ import annotations

import json
import logging
import time
from enum import Enum

from bot import keys, tickets
from bot.desk import NewComment
from bot.errors import PermanentError, TransientError
from bot.phones import mask

log = logging.getLogger("hotline.delivery")

MESSAGE_TTL = 30 * 24 * 3600
OPTED_OUT_TAG = "sms_opted_out"

# Twilio error codes an agent may see on a ticket, in plain words.
ERROR_MEANINGS = {
    21211: "the number is not a valid phone number",
    21408: "texting that country or region is not enabled on the Twilio account",
    21610: "the customer has opted out of texts from this number (replied STOP)",
    21612: "the number cannot be reached from this sender",
    21614: "the number is not a mobile number and cannot receive texts",
    30003: "the phone is unreachable (switched off or out of coverage)",
    30004: "the message was blocked (the customer or their carrier blocks it)",
    30005: "the number is unknown to its carrier or no longer in service",
    30006: "the number is a landline or its carrier cannot receive texts",
    30007: "the carrier filtered the message as spam",
    30008: "the carrier reported an unknown error",
    30034: "the sending number is not registered for US texting (A2P 10DLC)",
}

# Order of statuses; a callback never moves a message backwards.
STATUS_RANK = {"accepted": 0, "scheduled": 0, "queued": 1, "sending": 2, "sent": 3,
               "delivered": 4, "undelivered": 4, "failed": 4, "canceled": 4, "read": 5}
FAILED = {"failed", "undelivered"}


def explain(code) -> str:
    try:
        code = int(code)
    except (TypeError, ValueError):
        return "Twilio gave no error code"
    return f"Twilio error {code}: {ERROR_MEANINGS.get(code, 'see twilio.com/docs/errors/' + str(code))}"


class Sent(str, Enum):
    SENT = "sent"
    ALREADY = "already"          # this intent was carried out (or tried) before
    OPTED_OUT = "opted_out"
    NO_PHONE = "no_phone"        # an email conversation: Zendesk mails the customer itself
    FAILED = "failed"
    UNKNOWN = "unknown"


def is_ours(conn, sid: str) -> bool:
    """Whether `sid` is a text Hotline sent (so its delivery reports matter)."""
    return bool(conn.exists(keys.message(sid)))


def is_opted_out(conn, phone: str) -> bool:
    return bool(conn.hexists(keys.OPTED_OUT, phone))


def note(rt, ticket_id: int | None, text: str, *, add_tags=None, remove_tags=None,
         priority: str | None = None) -> None:
    """An internal note on the ticket, from Hotline (setting `priority` with it)."""
    if not ticket_id:
        return
    ticket = rt.desk.add_comment(int(ticket_id), NewComment(body=text, public=False),
                                 add_tags=add_tags, remove_tags=remove_tags, priority=priority)
    tickets.seen(rt.redis, ticket)


ONCALL = "oncall"  # the outbox of the on-call team's texts (no conversation of its own)


def once(rt, key: str, action) -> bool:
    """Run `action` once for `key` (ticket notes, alerts); a failure frees the key to retry."""
    marker = keys.PREFIX + "done:" + key
    if not rt.redis.set(marker, 1, nx=True, ex=MESSAGE_TTL):
        return False
    try:
        action()
    except BaseException:
        rt.redis.delete(marker)
        raise
    return True


def opt_out(rt, phone: str, ticket_id: int | None, why: str) -> None:
    """Mark the number opted out, then tag the ticket and tell the agent."""
    if rt.redis.hset(keys.OPTED_OUT, phone, int(time.time())):
        log.info("optout.set", extra={"to": mask(phone)})
    note_opt_out(rt, ticket_id, why)


def note_opt_out(rt, ticket_id: int | None, why: str) -> None:
    """Tag and note an opt-out on the ticket, once until the customer opts back in (no ticket
    yet: its summary says so, and `bot.enrichment` tags it)."""
    if not ticket_id:
        return
    rt.redis.delete(keys.PREFIX + f"done:optin:{ticket_id}")
    once(rt, f"optout:{ticket_id}", lambda: note(
        rt, ticket_id, f"The customer opted out of text messages ({why}). Hotline will send them "
                       f"nothing more until they text START.", add_tags=[OPTED_OUT_TAG]))


def note_opt_in(rt, ticket_id: int | None) -> None:
    if not ticket_id:
        return
    rt.redis.delete(keys.PREFIX + f"done:optout:{ticket_id}")
    once(rt, f"optin:{ticket_id}", lambda: note(
        rt, ticket_id, "The customer opted back in to text messages (START).",
        remove_tags=[OPTED_OUT_TAG]))


# What the agent reads when a text did not reach the customer (a note, or a line of the
# new ticket's summary when it failed before the ticket existed).

def refused_line(what: str, code) -> str:
    return f"Hotline could not send {what} to the customer: {explain(code)}."


def no_answer_line(what: str) -> str:
    return (f"Hotline may not have sent {what}: the carrier did not answer in time. Check with "
            f"the customer before sending it again.")


def undelivered_line(what: str, status: str, code) -> str:
    return f"A text to the customer was not delivered ({what}, status {status}): {explain(code)}."


def earlier_problem(rt, conv_id: str, intent: str, what: str) -> str | None:
    """What went wrong with the text already tried for `intent`, as a line for the agent, or
    None: it left and no failure was reported."""
    state = (rt.redis.hget(keys.outbox(conv_id), intent) or b"").decode()
    if state.startswith("failed:"):
        return refused_line(what, state.partition(":")[2])
    if state in ("unknown", "sending"):
        return no_answer_line(what)
    message = {k.decode(): v.decode() for k, v in rt.redis.hgetall(keys.message(state)).items()} \
        if state else {}
    if message.get("status") in FAILED:
        return undelivered_line(what, message["status"], message.get("error_code"))
    return None


def send_text(rt, *, conv_id: str, ticket_id: int | None, phone: str, body: str,
              intent: str, what: str) -> Sent:
    """Send `body` to `phone` once for `intent` (e.g. `comment:123:1`).

    `what` names the message for notes ("the agent reply", "the automatic reply").
    Raises TransientError when it is safe to try again later.
    """
    conn = rt.redis
    if not phone.startswith("+"):
        return Sent.NO_PHONE
    ledger = keys.outbox(conv_id)
    if conn.hget(ledger, intent) not in (None, b"sending"):
        return Sent.ALREADY  # tried before (perhaps before an opt-out): what happened is known
    if is_opted_out(conn, phone):
        log.info("send.opted-out", extra={"conv": conv_id, "to": mask(phone), "intent": intent})
        return Sent.OPTED_OUT
    if not conn.hsetnx(ledger, intent, "sending"):
        state = conn.hget(ledger, intent).decode()
        if state != "sending":
            return Sent.ALREADY
        # A worker died between recording the intent and settling it: the text
        # may have gone out. Telling the agent beats texting a customer twice.
        conn.hset(ledger, intent, "unknown")
        note(rt, ticket_id, f"Hotline may not have sent {what}: it was interrupted while "
                            f"sending. Check with the customer before sending it again.")
        return Sent.UNKNOWN
    conn.expire(ledger, MESSAGE_TTL)
    try:
        sid = rt.phone.send_sms(phone, body)
    except TransientError as exc:
        if exc.unknown_outcome:
            conn.hset(ledger, intent, "unknown")
            log.error("send.outcome-unknown", extra={"conv": conv_id, "to": mask(phone)})
            note(rt, ticket_id, no_answer_line(what))
            return Sent.UNKNOWN
        conn.hdel(ledger, intent)  # nothing left Hotline: safe to try again
        raise
    except PermanentError as exc:
        conn.hset(ledger, intent, f"failed:{exc.code or ''}")
        log.error("send.failed", extra={"conv": conv_id, "to": mask(phone), "code": exc.code})
        if exc.code == 21610:
            opt_out(rt, phone, ticket_id, "Twilio reports the number unsubscribed")
        note(rt, ticket_id, refused_line(what, exc.code))
        return Sent.FAILED
    pipe = conn.pipeline(transaction=True)
    pipe.hset(ledger, intent, sid)
    pipe.hset(keys.message(sid), mapping={"conv": conv_id, "ticket": ticket_id or "",
                                          "status": "queued", "what": what})
    pipe.expire(keys.message(sid), MESSAGE_TTL)
    pipe.execute()
    log.info("send.sent", extra={"conv": conv_id, "to": mask(phone), "intent": intent})
    return Sent.SENT


_ADVANCE = """
local rank = tonumber(ARGV[2])
local current = redis.call('HGET', KEYS[1], 'status')
if not current then return -1 end
local ranks = cjson.decode(ARGV[3])
local now = ranks[current] or 0
if rank <= now then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[1])
return 1
"""


def record_status(rt, sid: str, status: str, error_code) -> str:
    """Apply a delivery report: `ignored` (stale or unknown) or `applied`."""
    rank = STATUS_RANK.get(status)
    if rank is None:
        return "ignored"
    moved = rt.redis.eval(_ADVANCE, 1, keys.message(sid), status, rank, json.dumps(STATUS_RANK))
    if moved == -1:
        return "ignored"
    current = (rt.redis.hget(keys.message(sid), "status") or b"").decode()
    if status in FAILED and current == status:
        # Noted once; a failed note (Zendesk down) is written when the job is retried.
        if error_code:
            rt.redis.hset(keys.message(sid), "error_code", str(error_code))
        info = {k.decode(): v.decode() for k, v in rt.redis.hgetall(keys.message(sid)).items()}
        conv = {k.decode(): v.decode() for k, v in rt.redis.hgetall(keys.conversation(info["conv"])).items()}
        ticket = int(info["ticket"]) if info.get("ticket") else None
        if ticket is None and conv.get("ticket_id") and conv.get("ticket_status") != "closed":
            ticket = int(conv["ticket_id"])  # a first reply sent before its ticket existed: that one
        phone = conv.get("phone", "")
        if ticket is None:  # the new ticket's summary says it (`earlier_problem`)
            if str(error_code) == "21610" and phone:
                opt_out(rt, phone, None, "Twilio reports the number unsubscribed")
            return "applied"

        def tell_agent():
            if str(error_code) == "21610" and phone:
                opt_out(rt, phone, ticket, "Twilio reports the number unsubscribed")
            note(rt, ticket, undelivered_line(info.get("what", "a message"), status, error_code))
        once(rt, f"undelivered:{sid}", tell_agent)
    return "applied" if moved == 1 else "ignored"
