"""Carrying follow-ups out (SPEC 7): gather a ticket's facts, do what `bot.followups` decides.

Hotline's own records of a ticket (Redis, `keys.ticket`) hold what the steps
need between reads: its status and since when, its priority, since when the
customer waits for an answer and when an agent last answered publicly (the
status and priority written by `bot.tickets`, the waits here). Every write of
the customer's words and every webhook sync keeps them current; a due step
re-reads the ticket itself (one request) before acting, and acts with at most
one write (note, tag and priority together). The texts it sends are chosen in
`bot.texts`.

`bot.jobs` schedules and cancels the steps in RQ with what these return.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

from bot import delivery, enrichment, followups, keys, texts, tickets
from bot.errors import TicketClosed
from bot.events import InboundMessage
from bot.followups import Schedule, TicketState
from bot.phones import mask

log = logging.getLogger("hotline.followups")

DONE_TTL = 30 * 24 * 3600


def _s(value) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")


def _done_key(ticket_id, step: str, reason: str) -> str:
    return keys.PREFIX + f"done:fu:{ticket_id}:{step}:{reason}"


# -- what Hotline learns of a ticket -----------------------------------------

# KEYS: ticket hash. ARGV: when the customer's message arrived. A wait begins
# with the first message no agent answered; earlier messages of one wait win.
_WAITING = """
local since = tonumber(redis.call('HGET', KEYS[1], 'waiting_since') or '0')
local answered = tonumber(redis.call('HGET', KEYS[1], 'answered_at') or '0')
local t = tonumber(ARGV[1])
if (since == 0 or since <= answered) then
  if t > answered then redis.call('HSET', KEYS[1], 'waiting_since', ARGV[1]) return 1 end
  return 0
end
if t < since then redis.call('HSET', KEYS[1], 'waiting_since', ARGV[1]) return 1 end
return 0
"""
_ANSWERED = """
local before = tonumber(redis.call('HGET', KEYS[1], 'answered_at') or '0')
if tonumber(ARGV[1]) > before then redis.call('HSET', KEYS[1], 'answered_at', ARGV[1]) end
return 1
"""


def customer_wrote(rt, ticket_id: int, received_at: float, status: str, updated_at: str,
                   answered: bool = False) -> None:
    """The customer's words reached the ticket: a wait for an answer may begin — unless
    it is the record of a call someone answered (`answered`), which is an answer."""
    tickets.observe(rt.redis, ticket_id, status, updated_at)
    if answered:
        rt.redis.eval(_ANSWERED, 1, keys.ticket(ticket_id), int(time.time()))
    else:
        rt.redis.eval(_WAITING, 1, keys.ticket(ticket_id), int(received_at))


def agent_answered(rt, ticket_id: int, created_at: list[str]) -> None:
    """Agents answered publicly at these times: the customer's wait ends there."""
    times = [t for t in (tickets.epoch(c) for c in created_at) if t]
    if times:
        rt.redis.eval(_ANSWERED, 1, keys.ticket(ticket_id), int(max(times)))


def scheduled(rt, ticket_id: int) -> dict[str, dict]:
    """The follow-ups `bot.jobs` scheduled for the ticket: step -> {job, reason, due, queue}."""
    raw = rt.redis.hgetall(keys.followups(ticket_id))
    return {_s(k): json.loads(v) for k, v in raw.items()}


def state(rt, ticket_id: int) -> TicketState:
    """What Hotline knows of the ticket, for `followups.plan` and `followups.decide`."""
    link = {_s(k): _s(v) for k, v in rt.redis.hgetall(keys.ticket(ticket_id)).items()}
    phone = _s(rt.redis.hget(keys.conversation(link["conv"]), "phone")) if link.get("conv") else ""

    def num(name):
        return float(link[name]) if link.get(name) else None
    plain = TicketState(status=link.get("status", ""), status_since=num("status_since"),
                        waiting_since=num("waiting_since"), answered_at=num("answered_at"))
    candidates = []
    if plain.waiting_since:
        candidates.append((followups.FIRST_RESPONSE, followups.reason_of(plain.waiting_since)))
    if plain.status_since:
        reason = followups.reason_of(plain.status_since)
        candidates += [(followups.REMINDER, reason), (followups.LAST_NOTICE, reason),
                       (followups.SATISFACTION, reason)]
    found = rt.redis.mget([_done_key(ticket_id, s, r) for s, r in candidates]) if candidates else []
    return TicketState(
        status=plain.status, status_since=plain.status_since, priority=link.get("priority") or None,
        waiting_since=plain.waiting_since, answered_at=plain.answered_at,
        texts=phone.startswith("+"),
        done=frozenset(f"{s}:{r}" for (s, r), hit in zip(candidates, found) if hit),
        scheduled={step: (v["reason"], v["due"]) for step, v in scheduled(rt, ticket_id).items()})


def plan(rt, ticket_id: int) -> tuple[list[Schedule], list[str]]:
    return followups.plan(state(rt, ticket_id), rt.settings)


# -- a step that has come due ------------------------------------------------

@dataclass(frozen=True)
class Ran:
    outcome: str
    retry_at: float | None = None
    then: Schedule | None = None


def run(rt, ticket_id: int, step: str, reason: str, early: bool = False) -> Ran:
    """Re-read the ticket, decide, and carry the step out (at most one read and one write)."""
    conn = rt.redis
    conv_id = _s(conn.hget(keys.ticket(ticket_id), "conv"))
    conv = {_s(k): _s(v) for k, v in conn.hgetall(keys.conversation(conv_id)).items()} if conv_id else {}
    phone = conv.get("phone", "")
    ticket = rt.desk.ticket_for_followup(ticket_id)
    if ticket is None:
        return Ran("gone")
    tickets.observe(conn, ticket.id, ticket.status, ticket.updated_at, ticket.priority)
    now = time.time()
    facts = followups.Facts(
        state=state(rt, ticket_id),
        zone=followups.customer_zone(ticket.requester_time_zone, phone, rt.settings.timezone),
        opted_out=bool(phone) and delivery.is_opted_out(conn, phone),
        other_emergency=_other_emergency(rt, conv, ticket_id),
        surveyed_recently=bool(conv_id and open_survey(rt, conv_id)))
    action = followups.decide(step, reason, facts, now, rt.settings, early=early)
    log.info("followup.decided", extra={"ticket": ticket_id, "step": step, "outcome": action.outcome})
    if action.outcome in ("skipped", "opted_out"):
        conn.set(_done_key(ticket_id, step, reason), int(now), ex=DONE_TTL)  # final for this reason
    if action.outcome != "done":
        return Ran(action.outcome, retry_at=action.retry_at)

    if action.page:
        texts.overdue(rt, ticket_id, reason, action.page,
                      followups.minutes(now - facts.state.waiting_since))
    if action.text_customer:
        sent, _ = texts.send(rt, conv_id, ticket_id, texts.followup(ticket_id, step, reason))
        if sent == delivery.Sent.OPTED_OUT:
            conn.set(_done_key(ticket_id, step, reason), int(now), ex=DONE_TTL)
            return Ran("opted_out")
        if step == followups.SATISFACTION:
            conn.set(keys.survey(conv_id), json.dumps({"ticket": ticket_id, "at": int(now)}),
                     ex=max(1, int(rt.settings.followups.satisfaction_window_hours * 3600)))
    if action.note or action.tags or action.priority:
        try:
            delivery.once(rt, f"fu-note:{ticket_id}:{step}:{reason}", lambda: delivery.note(
                rt, ticket_id, action.note, add_tags=list(action.tags), priority=action.priority))
        except TicketClosed:
            return Ran("gone")
    conn.set(_done_key(ticket_id, step, reason), int(now), ex=DONE_TTL)
    return Ran("done", then=action.then)


def _other_emergency(rt, conv: dict, ticket_id: int) -> bool:
    """Whether the customer's current ticket is another one, open and urgent."""
    current = conv.get("ticket_id")
    if not current or current == str(ticket_id):
        return False
    other = {_s(k): _s(v) for k, v in rt.redis.hgetall(keys.ticket(current)).items()}
    return other.get("priority") == "urgent" and other.get("status", "open") in followups.OPEN_STATUSES


# -- survey answers ------------------------------------------------------------

def open_survey(rt, conv_id: str) -> dict | None:
    """The survey this customer got inside the window ({ticket, at, answered?}), if any.

    The key expires with the window too; the time inside it is what counts.
    """
    raw = rt.redis.get(keys.survey(conv_id))
    if not raw:
        return None
    survey = json.loads(raw)
    window = rt.settings.followups.satisfaction_window_hours * 3600
    return survey if time.time() - survey["at"] <= window else None


def survey_answer(rt, conv_id: str, message: InboundMessage) -> int | None:
    """Record `message` as the answer to a survey, if it is one; returns the rated ticket.

    Only a text inside the window that reads as a rating 1-5 — and does not sound
    like a new emergency or safety report — counts; anything else is an ordinary
    message (None). The rating goes on the surveyed ticket as a tag and a note,
    which never opens or reopens a ticket.
    """
    if message.channel != "sms" or message.kind_of != "text":
        return None
    survey = open_survey(rt, conv_id)
    if not survey or survey.get("answered"):
        return None
    parsed = followups.parse_rating(message.body)
    if not parsed:
        return None
    if enrichment.decide(rt, [message]).category in ("emergency", "safety"):
        return None
    score, comment = parsed
    ticket_id = int(survey["ticket"])
    text = f"The customer rated this case {score} out of 5 by text."
    if comment:
        text += f"\n\nTheir comment: {comment}"
    try:
        delivery.once(rt, f"csat:{ticket_id}", lambda: delivery.note(
            rt, ticket_id, text, add_tags=[f"csat_{score}"]))
    except TicketClosed:
        log.warning("followup.csat-on-closed", extra={"ticket": ticket_id})
    # One answer counts; the record stays for the window (a customer is surveyed once in it).
    rt.redis.set(keys.survey(conv_id), json.dumps(dict(survey, answered=True)), keepttl=True)
    log.info("followup.csat", extra={"ticket": ticket_id, "score": score,
                                     "from": mask(message.sender)})
    return ticket_id
