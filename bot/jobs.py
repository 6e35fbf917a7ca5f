"""RQ jobs: importable functions that take ids, re-read state, and say what happens next.

This is the only module that enqueues. Domain code returns typed values —
`conversations.Written` / `Later`, `enrichment.Recording` — and the jobs here
turn them into jobs, on the urgent queue (which every worker takes first) when
they concern an emergency. Arguments are opaque ids only: no phone number,
address or text is ever in a job's arguments (they show in RQ's dashboards
and logs).

One retry policy, `later()`, for every job: a transient failure is tried
again after the provider's `Retry-After` when it gave one, else after the
next step of `BACKOFF`; waiting for Zendesk's shared pause or Hotline's
budget (`Throttled`) is not a failure and uses up no try. Nothing sleeps in
a worker: a retry is a scheduled job.
"""
from __future__ import annotations

import functools
import json
import logging
import re
import time
from datetime import datetime, timedelta, timezone

from rq import Retry, get_current_job
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry

from bot import (agent_replies, calls, conversations, delivery, enrichment, followup_steps,
                 intake, keys, metrics, reconcile, runtime, texts)
from bot.desk import NewComment
from bot.tracing import Queue, job
from bot.errors import PermanentError, Throttled, TransientError
from bot.followups import FIRST_RESPONSE, REPAGE, Schedule

log = logging.getLogger("hotline.jobs")

# Seconds between attempts after a transient failure; then the sweep in the
# web tier keeps offering a conversation, so an outage of any length loses nothing.
BACKOFF = (2, 5, 15, 30, 60, 120, 300, 600)
JOB_OPTIONS = dict(job_timeout=300, result_ttl=600, failure_ttl=30 * 24 * 3600)


def later(exc: TransientError, attempt: int) -> tuple[float, int] | None:
    """The retry policy: (seconds to wait, the next attempt's number), or None when spent."""
    if isinstance(exc, Throttled):
        return max(exc.retry_after or 1.0, 0.5), attempt
    if attempt >= len(BACKOFF):
        return None
    return (exc.retry_after if exc.retry_after is not None else BACKOFF[attempt]), attempt + 1


def queue(rt, urgent: bool = False, replies: bool = False) -> Queue:
    config = rt.config
    name = config.urgent_queue_name if urgent else config.reply_queue_name if replies else config.queue_name
    return Queue(name, connection=rt.redis)


def enqueue(rt, fn, *args, urgent: bool = False, replies: bool = False, delay: float = 0,
            **options) -> None:
    """Queue `fn(*args)` — on the urgent queue, which every worker takes first, when `urgent`;
    on the replies queue, taken next, when `replies`."""
    options = {**JOB_OPTIONS, **options}
    options.setdefault("description", f"{fn.__name__}{args}")
    target = queue(rt, urgent, replies)
    if delay > 0:
        target.enqueue_in(timedelta(seconds=delay), fn, *args, **options)
    else:
        target.enqueue(fn, *args, **options)


def retried(fn):
    """Run a job under `later()`: a transient failure schedules the same job again
    on the same queue, its attempt counted in the job's meta."""

    @functools.wraps(fn)
    def run(*args):
        try:
            return fn(*args)
        except TransientError as exc:
            current = get_current_job()
            attempt = current.meta.get("attempt", 0) if current else 0
            step = later(exc, attempt)
            if current is None or step is None:
                raise
            delay, attempt = step
            Queue(current.origin, connection=current.connection).enqueue_in(
                timedelta(seconds=delay), run, *args, meta={"attempt": attempt},
                description=current.description, **JOB_OPTIONS)
            log.warning("job.retry", extra={"job": fn.__name__, "attempt": attempt, "delay": delay,
                                            "error": str(exc)})
            return "retrying"
    return run


# -- conversations -------------------------------------------------------------

@job
def process_conversation(conv_id: str, attempt: int = 0) -> int:
    """Write a conversation's pending events to the desk (see `bot.conversations`).

    Gives back the conversation's claim first, so an event arriving from now
    on queues the next job; a job whose claim was taken over (an emergency
    moved the conversation to the urgent queue) has nothing to do. From the
    replies queue (a new conversation, `bot.intake`) it texts the first reply
    and hands the conversation to the ordinary queue for the write.
    """
    rt = runtime.get()
    current = get_current_job()
    if not intake.release_claim(rt.redis, conv_id, current.id if current else None):
        return 0
    if current and current.origin == rt.config.reply_queue_name:
        # A new conversation: its acknowledgement now, then the write from the ordinary
        # queue (the urgent one for an emergency only the model saw).
        first = conversations.FirstReply("not tried")
        try:
            first = conversations.first_reply(rt, conv_id)
            log.info("conversation.first-reply", extra={"conv": conv_id, "outcome": first.outcome})
        except TransientError as exc:  # the new ticket's after_write sends it (`texts.autoreply`)
            log.warning("conversation.first-reply-later", extra={"conv": conv_id, "error": str(exc)})
        finally:
            _offer(rt, conv_id, 0, attempt, urgent=first.urgent)
        return 0
    urgent = bool(current and current.origin == rt.config.urgent_queue_name)
    written = 0
    try:
        for step in conversations.process(rt, conv_id, urgent=urgent):
            if isinstance(step, conversations.Later):
                _offer(rt, conv_id, step.seconds, attempt, urgent)
                return written
            written += step.facts.get("events", 1)
            if enrichment.has_followups(step.facts):
                enqueue(rt, after_write, step.conv_id, step.ticket_id, step.facts,
                        urgent=step.urgent, replies=step.replies,
                        description=f"after_write({step.conv_id}, {step.ticket_id})")
    except TransientError as exc:
        retry = later(exc, attempt)
        if retry is None:
            raise
        _offer(rt, conv_id, retry[0], retry[1], urgent)
        log.warning("conversation.retry", extra={"conv": conv_id, "attempt": retry[1],
                                                 "delay": retry[0], "error": str(exc)})
    return written


def _offer(rt, conv_id: str, delay: float, attempt: int, urgent: bool) -> None:
    """Schedule the conversation's next job, unless an event already queued one."""
    job = intake.claim(rt.redis, conv_id, urgent)
    if job is None:
        return
    intake.enqueue_conversation(rt.redis, rt.config.queue_name, conv_id, job=job, delay=delay,
                                attempt=attempt, urgent=rt.config.urgent_queue_name)
    # Keep the sweep from offering it again before then.
    rt.redis.zadd(keys.PENDING_INDEX, {conv_id: int((time.time() + delay) * 1000)}, xx=True)


@job
@retried
def after_write(conv_id: str, ticket_id: int, facts: dict) -> None:
    """Alerts, texts and notes a written batch calls for (see `bot.enrichment.followups`)."""
    rt = runtime.get()
    for recording in enrichment.followups(rt, conv_id, ticket_id, facts):
        enqueue_recording(rt, recording.ticket_id, recording.recording)
    if facts.get("received_at") and ticket_id is not None:
        # The follow-ups the customer's words call for (a first-response watch; the
        # reminders of a pending ticket they answered are cancelled).
        followup_steps.customer_wrote(rt, ticket_id, facts["received_at"], facts["status"],
                                      facts["updated_at"], answered=bool(facts.get("answered_call")))
        plan_followups(rt, ticket_id)


# -- agents' replies and delivery reports --------------------------------------

@job
@retried
def sync_ticket(ticket_id: int, _attempt: int = 0) -> int:
    """Send the ticket's new agent replies and macro texts to the customer (see `bot.agent_replies`).

    (`_attempt`: jobs queued before the one retry policy counted tries in their arguments.)
    """
    rt = runtime.get()
    sent = agent_replies.sync(rt, ticket_id)
    plan_followups(rt, ticket_id)  # the sync saw answers and status changes
    return sent


@job
@retried
def send_template(conv_id: str, ticket_id: int | None, template: str, intent: str | None = None) -> str:
    """A text queued by an earlier version (now sent inside `after_write`): sent once as asked."""
    text = texts.Text(template, intent or f"template:{template}:{ticket_id}",
                      f"the automatic reply ({template.rsplit('/', 1)[-1]})")
    return texts.send(runtime.get(), conv_id, ticket_id, text)[0].value


@retried
def delivery_status(sid: str, status: str, error_code: str | None = None) -> str:
    """Apply a Twilio delivery report to the message's record (and its ticket when it failed)."""
    return delivery.record_status(runtime.get(), sid, status, error_code)


# -- calls ---------------------------------------------------------------------

RECORDING_TRIES = 6


def enqueue_recording(rt, ticket_id: int, recording: dict, attempt: int = 0, delay: int = 0) -> None:
    enqueue(rt, attach_recording, ticket_id, recording["sid"], recording["url"],
            recording.get("duration", 0), attempt, delay=delay,
            description=f"attach_recording({ticket_id}, {recording['sid']})")


@job
def attach_recording(ticket_id: int, recording_sid: str, url: str, duration: int = 0,
                     attempt: int = 0) -> str:
    """Download a voicemail's audio from Twilio and attach it to the ticket (once).

    The ticket already has the recording's link; a recording Twilio has not
    finished storing (404) or a failed download is tried again with back-off,
    and after the last try the agent gets a note saying so.
    """
    rt = runtime.get()
    marker = f"recording:{recording_sid}"
    if rt.redis.exists(keys.PREFIX + "done:" + marker):
        return "already"
    recording = {"sid": recording_sid, "url": url, "duration": duration}
    try:
        media = rt.phone.fetch_media(url + ".mp3", rt.settings.media_max_bytes * 4)
    except (TransientError, PermanentError) as exc:
        if attempt + 1 < RECORDING_TRIES and (isinstance(exc, TransientError) or exc.status == 404):
            enqueue_recording(rt, ticket_id, recording, attempt + 1,
                              BACKOFF[min(attempt, len(BACKOFF) - 1)] * 2)
            return "retrying"
        text = (f"Hotline could not attach the voicemail's audio ({exc}). The link above still "
                f"plays it: {url}.mp3")
        delivery.once(rt, marker, lambda: delivery.note(rt, ticket_id, text))
        return "failed"

    def attach():
        token = rt.desk.upload(f"voicemail-{recording_sid}.mp3", media.content,
                               media.content_type or "audio/mpeg")
        rt.desk.add_comment(ticket_id, NewComment(
            body=f"Voicemail recording ({duration} s), audio attached.", public=False,
            uploads=[token]))
    try:
        delivery.once(rt, marker, attach)
    except TransientError as exc:  # Zendesk busy or down: the one retry policy
        step = later(exc, attempt)
        if step is None or attempt + 1 >= RECORDING_TRIES:
            raise
        enqueue_recording(rt, ticket_id, recording, step[1], step[0])
        return "retrying"
    return "attached"


@job
def call_ended(call_sid: str, attempt: int = 0) -> str:
    """A call ended: a little later, once its other callbacks are in, leave its trace (`bot.calls`)."""
    rt = runtime.get()
    if attempt == 0:
        enqueue(rt, call_ended, call_sid, 1, delay=calls.SETTLE_SECONDS,
                description=f"call_ended({call_sid})")
        return "waiting"
    return calls.settle(rt, call_sid)


def schedule_reconcile(conn, queue_name: str, settings, now: float | None = None,
                       after_ms: int = 0) -> int | None:
    """Put the next slot's reconciliation in RQ's scheduler, once per slot, whoever asks.

    Slots are fixed times (multiples of `reconcile_minutes`, in whole milliseconds),
    and a once-key per slot makes the ask idempotent: the running job asks for the
    next one, and so does every web process's maintenance pass, so a redeploy neither
    stops the chain nor doubles it. `after_ms`: a slot's own run asks for a later
    slot, even on a worker whose clock is a little behind the scheduler's. Returns
    the slot (its time in epoch milliseconds) when this call scheduled it.
    """
    interval_ms = round(settings.reconcile_minutes * 60_000)
    if interval_ms <= 0:
        return None
    now_ms = max(int((time.time() if now is None else now) * 1000), after_ms)
    slot = (now_ms // interval_ms + 1) * interval_ms
    if not conn.set(keys.reconcile_slot(slot), 1, nx=True, ex=2 * interval_ms // 1000 + 600):
        return None
    Queue(queue_name, connection=conn).enqueue_at(
        datetime.fromtimestamp(slot / 1000, timezone.utc), reconcile_slot, slot,
        job_id=f"hotline-reconcile-{slot}", description=f"reconcile_slot({slot})",
        job_timeout=reconcile.LOCK_SECONDS, result_ttl=3600, failure_ttl=7 * 24 * 3600)
    return slot


@job
def reconcile_slot(slot: int) -> str:
    """The scheduled reconciliation for `slot` (epoch ms; see `bot.reconcile`): at most one
    run per slot, one at a time; a Twilio outage leaves the mark for the next slot."""
    rt = runtime.get()
    settings = rt.settings
    schedule_reconcile(rt.redis, rt.config.queue_name, settings, after_ms=slot)  # the chain goes on
    if not rt.redis.set(keys.reconcile_ran(slot), 1, nx=True,
                        ex=round(2 * settings.reconcile_minutes * 60) + 600):
        return "already-ran"
    mark = rt.redis.get(keys.RECONCILE_MARK)
    if mark and float(mark) * 1000 >= slot:
        # Slots piled up while no worker ran (the web tier kept scheduling them): the
        # first late one listed past this one's time already.
        return "covered"
    try:
        report = reconcile.run(rt)
    except reconcile.Busy:
        log.info("reconcile.busy", extra={"slot": slot})
        return "busy"
    except TransientError as exc:
        log.warning("reconcile.retry-later", extra={"slot": slot, "error": str(exc)})
        return "retry-later"
    return "skipped" if report.skipped else f"recovered {len(report.taken_in)}"


# -- follow-ups (SPEC 7): decided in `bot.followups`, carried out in `bot.followup_steps`

FOLLOWUP_PREFIX = "hotline-fu-"  # every follow-up's job id: hotline-fu-<ticket>-<step>-<reason>-<due>
FOLLOWUP_RETRY = Retry(max=6, interval=[5, 15, 60, 300, 900, 1800])


def plan_followups(rt, ticket_id: int) -> None:
    """Bring the ticket's scheduled follow-ups in line with what Hotline knows of it."""
    wanted, moot = followup_steps.plan(rt, ticket_id)
    for step in moot:
        cancel_followup(rt, ticket_id, step)
    for item in wanted:
        schedule_followup(rt, ticket_id, item)


def schedule_followup(rt, ticket_id: int, item: Schedule) -> None:
    """Schedule one step in RQ's scheduler (persisted in Redis), replacing the step's earlier job.

    The job's id names the ticket, step, reason and time, so two workers
    scheduling the same thing make one job.
    """
    reason = item.reason.replace(":", "-")
    job_id = f"{FOLLOWUP_PREFIX}{ticket_id}-{item.step}-{reason}-{int(item.due)}"
    previous = followup_steps.scheduled(rt, ticket_id).get(item.step)
    if previous and previous["job"] != job_id:
        cancel_followup(rt, ticket_id, item.step)
    target = queue(rt, item.urgent)
    when = datetime.fromtimestamp(max(item.due, time.time()), timezone.utc)
    target.enqueue_at(when, followup, ticket_id, item.step, item.reason, job_id=job_id,
                     retry=FOLLOWUP_RETRY, result_ttl=3600, failure_ttl=30 * 24 * 3600,
                     description=f"followup({ticket_id}, {item.step})")
    rt.redis.hset(keys.followups(ticket_id), item.step, json.dumps(
        {"job": job_id, "reason": item.reason, "due": item.due, "queue": target.name}))


def cancel_followup(rt, ticket_id: int, step: str) -> None:
    """Take the step's scheduled job out of RQ (its reason is gone)."""
    entry = followup_steps.scheduled(rt, ticket_id).get(step)
    rt.redis.hdel(keys.followups(ticket_id), step)
    if not entry:
        return
    job = Job.fetch(entry["job"], connection=rt.redis) if rt.redis.exists(
        Job.key_for(entry["job"])) else None
    if job is not None and job.get_status() == JobStatus.SCHEDULED:
        ScheduledJobRegistry(entry["queue"], connection=rt.redis).remove(job)
        job.delete(remove_from_queue=True)
        metrics.followup(rt.redis, step, "cancelled")


# What a step's outcome is called in `hotline_followups_total{step,outcome}`.
OUTCOMES = {"gone": "cancelled", "done": "sent"}
ESCALATIONS = {FIRST_RESPONSE, REPAGE}


@job
def followup(ticket_id: int, step: str, reason: str, early: bool = False) -> str:
    """A follow-up come due: re-read the ticket, act once if its reason holds (`bot.followup_steps`)."""
    rt = runtime.get()
    me = get_current_job()
    entry = followup_steps.scheduled(rt, ticket_id).get(step)
    if me is not None and entry and entry["job"] == me.id:
        rt.redis.hdel(keys.followups(ticket_id), step)
    ran = followup_steps.run(rt, ticket_id, step, reason, early)
    if ran.retry_at:
        urgent = me is not None and me.origin == rt.config.urgent_queue_name
        schedule_followup(rt, ticket_id, Schedule(step, reason, ran.retry_at, urgent))
    if ran.then:
        schedule_followup(rt, ticket_id, ran.then)
    plan_followups(rt, ticket_id)  # what the read showed (a status change whose webhook was lost)
    log.info("followup.ran", extra={"ticket": ticket_id, "step": step, "outcome": ran.outcome})
    outcome = "escalated" if ran.outcome == "done" and step in ESCALATIONS else \
        OUTCOMES.get(ran.outcome, ran.outcome)
    metrics.followup(rt.redis, step, outcome)
    return ran.outcome


FOLLOWUP_ID = re.compile(re.escape(FOLLOWUP_PREFIX) + r"(\d+)-([a-z_]+)-")


def scheduled_followups(conn, config, ticket_id: int | None = None) -> list[dict]:
    """What RQ's scheduler holds: [{ticket, step, due, queue, job}], soonest first.

    Read from the scheduled registries themselves (a follow-up's job id names its
    ticket and step), so what is listed is what RQ will run.
    """
    out = []
    for name in config.queues:
        registry = ScheduledJobRegistry(name, connection=conn)
        for job_id, score in conn.zrange(registry.key, 0, -1, withscores=True):
            match = FOLLOWUP_ID.match(job_id.decode())
            if not match or (ticket_id and int(match.group(1)) != ticket_id):
                continue
            out.append({"ticket": int(match.group(1)), "step": match.group(2), "queue": name,
                        "job": job_id.decode(), "due": datetime.fromtimestamp(score, timezone.utc)})
    return sorted(out, key=lambda f: f["due"])


def run_followups_now(conn, config, ticket_id: int) -> int:
    """Local mode's "run due now": queue the ticket's scheduled follow-ups as if they were due."""
    moved = 0
    for item in scheduled_followups(conn, config, ticket_id):
        job = Job.fetch(item["job"], connection=conn)
        ScheduledJobRegistry(item["queue"], connection=conn).remove(job)
        job.delete(remove_from_queue=True)
        conn.hdel(keys.followups(ticket_id), item["step"])
        Queue(item["queue"], connection=conn).enqueue(
            followup, *job.args[:3], early=True, retry=FOLLOWUP_RETRY,
            job_id=f"{FOLLOWUP_PREFIX}{ticket_id}-{item['step']}-now-{time.time_ns()}",
            description=f"followup({ticket_id}, {item['step']}, now)")
        moved += 1
    return moved


def failure_reason(job) -> str:
    """The last line of a failed job's traceback (the error itself), or "" when it has none."""
    result = job.latest_result() if job else None
    lines = (result.exc_string or "").strip().splitlines() if result else []
    return lines[-1] if lines else ""
