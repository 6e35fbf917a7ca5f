"""Reconciliation with Twilio (SPEC 10): nothing is lost even when Hotline was down.

Twilio does not retry a text whose webhook failed. Every `reconcile_minutes`
one run lists, from Twilio's REST API, the inbound texts and calls to the
support number(s) since the high-water mark (less an overlap), and whatever
Hotline never claimed goes through the same intake as a webhook: the same
translation and redaction (`bot.phone.twilio_inbound`), the same once-only
claim (so a text whose webhook did arrive, or arrives while this runs, is
written once), in Twilio's order. A recovered call with no trace in Hotline
becomes the same missed-call event the status callback makes (`bot.calls`).

The decisions here are plain functions; `run` performs them. Scheduling (one
run per slot, whichever worker) lives in `bot.jobs`.
"""
from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

from bot import calls, delivery, intake, keys, metrics
from bot.events import InboundMessage
from bot.phone.twilio_inbound import message_from_form
from bot.phones import mask, to_e164

log = logging.getLogger("hotline.reconcile")

ENDED = {"completed", *calls.WHY}   # a call in any other status is not over yet
LOCK_SECONDS = 600          # a run that takes longer than this has died
MAX_SINCE_SECONDS = keys.SEEN_TTL - 3600   # older than the once-only claims: could write twice

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass
class Recovered:
    """One text or call Hotline took in from Twilio's list (no message text)."""

    kind: str          # text | missed_call
    sid: str
    sender: str        # masked
    sent_at: float     # Twilio's time
    outcome: str       # queued | spooled | duplicate (its webhook won the race)


@dataclass
class Report:
    since: float = 0.0
    until: float = 0.0
    numbers: list[str] = field(default_factory=list)   # masked
    messages_listed: int = 0
    calls_listed: int = 0
    recovered: list[Recovered] = field(default_factory=list)
    skipped: str = ""  # why nothing was done

    @property
    def taken_in(self) -> list[Recovered]:
        return [r for r in self.recovered if r.outcome != "duplicate"]


# -- decisions -------------------------------------------------------------------

def window_start(mark: float | None, now: float, settings, since_seconds: float | None = None) -> float:
    """Where a run starts listing: the mark less the overlap; with no mark, the lookback;
    by hand, `since_seconds` ago. Never further back than the once-only claims live
    (a mark from before a week-long stop would otherwise write some texts twice)."""
    overlap = max(2.0, settings.reconcile_overlap_minutes) * 60
    if since_seconds is not None:
        start = now - since_seconds
    else:
        start = mark - overlap if mark else now - settings.reconcile_lookback_hours * 3600
    return max(start, now - MAX_SINCE_SECONDS)


def recovered_message(fields: dict, recovered_at: float) -> InboundMessage | str:
    """A listed text as the event its webhook would have made, marked as recovered."""
    message = message_from_form(fields)
    if isinstance(message, str):
        return message
    return _mark(message, fields["sent_at"], recovered_at)


def recovered_call(fields: dict, recovered_at: float) -> InboundMessage | None:
    """A listed call Hotline never saw: the missed-call event its status callback would
    have made (`bot.calls.ended_event`), or None while the call is not over."""
    if fields["CallStatus"] not in ENDED:
        return None
    event = calls.ended_event(fields["CallSid"], {
        "caller": to_e164(fields.get("From", "")) or "", "ended": fields["CallStatus"],
        "duration": fields.get("CallDuration") or "0"})
    return _mark(event, fields["sent_at"], recovered_at) if event else None


def _mark(event: InboundMessage, sent_at: float, recovered_at: float) -> InboundMessage:
    event.provider_sent_at, event.recovered_at, event.received_at = sent_at, recovered_at, sent_at
    return event


def in_twilio_order(events: list[InboundMessage]) -> list[InboundMessage]:
    """Oldest first by Twilio's time, each strictly after the one before (Twilio's times
    have one-second resolution; the conversation's queue is ordered by this time)."""
    ordered = sorted(events, key=lambda e: e.provider_sent_at)
    previous = None
    for event in ordered:
        if previous is not None and event.received_at <= previous:
            event.received_at = previous + 0.001
        previous = event.received_at
    return ordered


def note(settings, *, channel: str, sent_at: float, recovered_at: float) -> str:
    """The internal note on the ticket: what happened and when, never the customer's words."""
    tz = settings.timezone

    def at(ts: float) -> str:
        local = datetime.fromtimestamp(ts, tz)
        same_day = local.date() == datetime.fromtimestamp(recovered_at, tz).date()
        return local.strftime("%H:%M" if same_day else "%b %d %H:%M")

    zone = datetime.fromtimestamp(recovered_at, tz).strftime("%Z")
    what = "call" if channel == "voice" else "text"
    verb = "called" if channel == "voice" else "sent"
    return (f"Recovered from Twilio: {verb} {at(sent_at)}, reached Hotline {at(recovered_at)} "
            f"({zone}, {tz.key}). This {what}'s webhook never reached Hotline; "
            f"reconciliation took it in from Twilio's records.")


def fact(message: InboundMessage) -> dict | None:
    """What the note needs, as plain data for the job that writes it."""
    if not message.recovered_at:
        return None
    return {"id": message.provider_id, "channel": message.channel,
            "sent_at": message.provider_sent_at, "recovered_at": message.recovered_at}


def mark_ticket(rt, ticket_id: int, recovered: dict) -> None:
    """Note on the ticket, once, that this event was recovered from Twilio."""
    delivery.once(rt, f"recovered:{recovered['id']}", lambda: delivery.note(
        rt, ticket_id, note(rt.settings, channel=recovered["channel"],
                            sent_at=recovered["sent_at"], recovered_at=recovered["recovered_at"])))


# -- the run -----------------------------------------------------------------------

class Busy(Exception):
    """Another reconciliation is running."""


def run(rt, since_seconds: float | None = None, now: float | None = None) -> Report:
    """List what Twilio received, take in what Hotline never claimed, move the mark.

    Raises TransientError when Twilio is down or limiting (the mark stays, so the
    next run covers the same time), Busy when another run holds the lock.
    """
    if not rt.config.has_twilio:
        log.info("reconcile.skipped", extra={"reason": "local mode: no Twilio to list"})
        return Report(skipped="local mode: there is no Twilio account to list")
    if since_seconds is not None and since_seconds > MAX_SINCE_SECONDS:
        raise ValueError(f"--since is limited to {MAX_SINCE_SECONDS // 3600} h: older claims "
                         f"have expired and a text could be written twice")
    conn = rt.redis
    token = uuid.uuid4().hex
    if not conn.set(keys.RECONCILE_LOCK, token, nx=True, ex=LOCK_SECONDS):
        raise Busy("another reconciliation is running")
    try:
        return _run(rt, since_seconds, time.time() if now is None else now)
    finally:
        conn.eval(_RELEASE, 1, keys.RECONCILE_LOCK, token)


def _run(rt, since_seconds: float | None, now: float) -> Report:
    conn, phone = rt.redis, rt.phone
    raw_mark = conn.get(keys.RECONCILE_MARK)
    mark = float(raw_mark) if raw_mark else None
    start = window_start(mark, now, rt.settings, since_seconds)
    since = datetime.fromtimestamp(start, timezone.utc)
    report = Report(since=start, until=now)
    numbers = phone.support_numbers()
    report.numbers = [mask(n) for n in numbers]
    events: list[InboundMessage] = []
    mms: dict[str, dict] = {}  # event id -> its listed fields, for its media
    hold = now  # the mark may not pass a call still in progress
    for number in numbers:
        for fields in phone.inbound_messages(number, since):
            report.messages_listed += 1
            message = recovered_message(fields, now)
            if isinstance(message, str):
                log.warning("reconcile.unreadable", extra={"sid": fields["MessageSid"],
                                                           "reason": message})
                continue
            if conn.exists(keys.seen(message.dedupe_key)):
                continue
            if int(fields.get("NumMedia") or 0):
                mms[message.event_id] = fields
            events.append(message)
        for fields in phone.inbound_calls(number, since):
            report.calls_listed += 1
            if _call_known(conn, fields):
                continue
            event = recovered_call(fields, now)
            if event is None:
                hold = min(hold, fields["sent_at"])
                continue
            events.append(event)
    for event in in_twilio_order(events):
        if event.event_id in mms:
            # Media listed only now, oldest first: a run cut short has taken in the
            # oldest texts already, and the next run goes on from there.
            event.media = recovered_message({**mms[event.event_id], **phone.message_media(
                event.provider_id)}, now).media
        outcome = intake.accept(rt.redis, rt.config.queue_name, rt.config.spool_dir, event,
                                triage=rt.settings.triage, urgent_queue=rt.config.urgent_queue_name)
        kind = "missed_call" if event.channel == "voice" else "text"
        metrics.event(rt.redis, event.channel, outcome.counted, defer=False)  # as its webhook's would be
        sid = event.provider_id.split(":")[0]
        report.recovered.append(Recovered(kind=kind, sid=sid, sender=mask(event.sender),
                                          sent_at=event.provider_sent_at, outcome=outcome.value))
        log.warning("reconcile.recovered", extra={
            "event_id": event.event_id, "sid": sid, "kind": kind, "from": mask(event.sender),
            "outcome": outcome.value, "late_seconds": round(now - event.provider_sent_at)})
    _advance(conn, hold)
    log.info("reconcile.done", extra={
        "since": round(start), "messages": report.messages_listed, "calls": report.calls_listed,
        "recovered": len(report.taken_in)})
    return report


def _call_known(conn, fields: dict) -> bool:
    """Whether Hotline saw this call: its state, its status callback or its outcome event."""
    sid = fields["CallSid"]
    return bool(conn.exists(
        keys.call(sid), keys.seen(f"twilio:callstatus:{sid}:{fields['CallStatus']}"),
        keys.seen(f"twilio:voice:{sid}:missed"), keys.seen(f"twilio:voice:{sid}:answered")))


_ADVANCE = """
local old = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > old then redis.call('SET', KEYS[1], ARGV[1]) end
return 1
"""


def _advance(conn, mark: float) -> None:
    """Move the high-water mark forward (never back: a manual run may look further back)."""
    conn.eval(_ADVANCE, 1, keys.RECONCILE_MARK, repr(mark))
