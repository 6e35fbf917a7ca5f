"""Accepting an event: claim it once, queue it in its conversation, hand it to RQ.

This is the only thing the web tier does with an event (SPEC 3.3, 3.4):

1. one Lua script atomically claims the provider's id (a duplicate stops
   here), gives the conversation an opaque id, and adds the event to the
   conversation's pending set, scored by the time it was received — so a
   conversation's messages reach Zendesk in the order they arrived, whichever
   worker takes them;
2. the same script claims "a job is queued for this conversation"; only the
   event that takes the claim enqueues `process_conversation(conv_id)` — its
   only argument is that opaque id, so no phone number or text sits in a job's
   arguments — so a conversation has at most one queued job however many
   texts arrive (SPEC 12). The job gives the claim back when it starts
   reading the pending set, so an event arriving while it works queues the
   next one. An emergency goes on the urgent queue, which every worker takes
   first, and takes the claim over from a job waiting on the ordinary queue;
3. a text that starts a new conversation (no current ticket in Hotline's map)
   has its job queued on the replies queue, which workers take after the
   urgent one and before the rest: the job texts the acknowledgement at once
   and hands the conversation on to the ordinary queue for the Zendesk write,
   so the customer's first reply waits neither for Zendesk nor behind other
   conversations' writes (SPEC 12: ≤ 3 s);
4. if Redis cannot do any of this, the event goes to the local spool and is
   forwarded from there later by `drain_spool`.
"""
from __future__ import annotations

import base64
import json
import logging
import math
import time
import uuid
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path

import redis
from rq import Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from bot import keys, keywords, spool, tracing
from bot.config import reply_queue
from bot.redisconn import UNAVAILABLE

log = logging.getLogger("hotline.intake")

# KEYS: seen, convids, pending index
# ARGV: claim token, claim ttl, conversation key, fresh conv id, event json, score, key prefix,
#       job id to claim the conversation's queued job with (`u-` urgent, else `n-`), its ttl,
#       "1" when the event may start a new conversation's first reply
# Returns {1, conv id, job id or ""} (a job id: enqueue it; an `r-` one on the replies queue),
# or {0} for a duplicate.
_ACCEPT = """
local claimed = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2])
if not claimed and redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return {0}
end
local id = redis.call('HGET', KEYS[2], ARGV[3])
if not id then
  id = ARGV[4]
  redis.call('HSET', KEYS[2], ARGV[3], id)
  redis.call('HSET', ARGV[7] .. 'conv:' .. id, 'key', ARGV[3])
end
redis.call('ZADD', ARGV[7] .. 'pending:' .. id, ARGV[6], ARGV[5])
redis.call('ZADD', KEYS[3], 'NX', ARGV[6], id)
local queued = ARGV[7] .. 'queued:' .. id
local holder = redis.call('GET', queued)
-- A claim whose job was never created (Redis failed between claim and enqueue) is free.
if holder and redis.call('EXISTS', 'rq:job:' .. holder) == 1
   and not (string.sub(ARGV[8], 1, 2) == 'u-' and string.sub(holder, 1, 2) ~= 'u-') then
  return {1, id, ''}
end
local job = ARGV[8]
if ARGV[10] == '1' then
  -- No current ticket: the job answers first, from the replies queue.
  local conv = redis.call('HMGET', ARGV[7] .. 'conv:' .. id, 'ticket_id', 'ticket_status')
  if not conv[1] or conv[1] == '' or conv[2] == 'closed' then
    job = 'r-' .. string.sub(job, 3)
  end
end
redis.call('SET', queued, job, 'EX', ARGV[9])
return {1, id, job}
"""
# Give the claim back, if it is still this job's: 1; 0 when another job holds it.
_RELEASE = """
local holder = redis.call('GET', KEYS[1])
if not holder then return 1 end
if holder == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
return 0
"""
CLAIM_TTL = 15 * 60   # a claim whose job was lost (a crash between pop and start) ends anyway

JOB = "bot.jobs.process_conversation"


class Outcome(str, Enum):
    QUEUED = "queued"
    DUPLICATE = "duplicate"
    SPOOLED = "spooled"

    @property
    def counted(self) -> str:
        """The outcome as `hotline_events_total` names it."""
        return "accepted" if self is Outcome.QUEUED else self.value


def urgent_queue(queue_name: str) -> str:
    """The default urgent queue for `queue_name` (`Config.urgent_queue_name`)."""
    return f"{queue_name}-urgent"


def may_start_reply(message) -> bool:
    """Whether an event may start a new conversation's early acknowledgement: a text
    (not a keyword; an emergency's advice names its case and waits for the ticket)."""
    return message.channel == "sms" and message.kind_of == "text" and not keywords.keyword(message)


def job_id(urgent: bool = False) -> str:
    """A fresh id for a conversation's job; an urgent one says so (`u-`)."""
    return ("u-" if urgent else "n-") + uuid.uuid4().hex


def enqueue_conversation(conn: redis.Redis, queue_name: str, conv_id: str, *,
                         job: str | None = None, delay: float = 0, attempt: int = 0,
                         urgent: str | None = None) -> None:
    """Ask a worker to bring conversation `conv_id` up to date in Zendesk.

    `job` is the id that holds the conversation's claim (`urgent`'s start with
    `u-` and go on the urgent queue; a new conversation's first with `r-`, on the
    replies queue); without one, the claim is taken here, and nothing is queued
    when another job already holds it.
    """
    if job is None:
        job = claim(conn, conv_id)
        if job is None:
            return
    name = (urgent or urgent_queue(queue_name)) if job.startswith("u-") else \
        reply_queue(queue_name) if job.startswith("r-") else queue_name
    queue = tracing.Queue(name, connection=conn)
    args = (conv_id, attempt) if attempt else (conv_id,)
    options = dict(job_id=job, job_timeout=300, result_ttl=600, failure_ttl=30 * 24 * 3600,
                   description=f"process_conversation({conv_id})")
    if delay > 0:
        # RQ's scheduled registry counts whole seconds: round up, never run early.
        due = datetime.fromtimestamp(math.ceil(time.time() + delay), timezone.utc)
        queue.enqueue_at(due, JOB, *args, **options)
    else:
        queue.enqueue(JOB, *args, **options)


def release_claim(conn: redis.Redis, conv_id: str, job: str | None) -> bool:
    """Give back the conversation's claim when `job` holds it; False when another job does."""
    if job is None:
        return True
    return bool(conn.eval(_RELEASE, 1, keys.queued(conv_id), job))


def claim(conn: redis.Redis, conv_id: str, urgent: bool = False) -> str | None:
    """Take the conversation's claim for a new job; None when another job holds it."""
    job = job_id(urgent)
    return job if conn.set(keys.queued(conv_id), job, nx=True, ex=CLAIM_TTL) else None


def is_urgent(message, triage) -> bool:
    """Whether an event goes on the urgent queue: the caller chose emergency, or triage says so."""
    if getattr(message, "triage_hint", "") == "emergency":
        return True
    if triage is None or message.kind_of not in ("text", "transcription") or keywords.keyword(message):
        return False  # STOP/START/HELP are answered, not escalated
    return triage.may_be_emergency(message.body or "")


def _queue(conn: redis.Redis, queue_name: str, event: dict, urgent: str | None = None) -> Outcome:
    job = job_id(bool(event.get("urgent")))
    blobs = event.get("blobs") or {}
    if blobs:
        claim = conn.get(keys.seen(event["dedupe_key"]))
        if claim is not None and claim.decode() != event["event_id"]:
            return Outcome.DUPLICATE  # a provider's retry: do not store its attachments again
        # Attachments before the event: a queued event never points at missing bytes.
        pipe = conn.pipeline(transaction=False)
        for key, data in blobs.items():
            pipe.set(keys.blob(key), base64.b64decode(data), ex=keys.BLOB_TTL)
        pipe.execute()
    result = conn.register_script(_ACCEPT)(
        keys=[keys.seen(event["dedupe_key"]), keys.CONV_IDS, keys.PENDING_INDEX],
        args=[event["event_id"], keys.SEEN_TTL, event["conversation_key"], uuid.uuid4().hex,
              json.dumps(event["data"], sort_keys=True), int(event["received_at"] * 1000),
              keys.PREFIX, job, CLAIM_TTL, "1" if event.get("first_reply") else ""])
    if not result or int(result[0]) == 0:
        return Outcome.DUPLICATE
    conv_id, claimed = (v.decode() if isinstance(v, bytes) else v for v in result[1:3])
    if claimed:
        enqueue_conversation(conn, queue_name, conv_id, job=claimed, urgent=urgent)
    return Outcome.QUEUED


_CLAIM = """
local claimed = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2])
if claimed or redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end
return 0
"""


def _queue_job(conn: redis.Redis, queue_name: str, event: dict, urgent: str | None = None) -> Outcome:
    if not conn.eval(_CLAIM, 1, keys.seen(event["dedupe_key"]), event["event_id"], keys.SEEN_TTL):
        return Outcome.DUPLICATE
    tracing.Queue(queue_name, connection=conn).enqueue(
        event["job"], *event["args"], job_timeout=300, result_ttl=600,
        failure_ttl=30 * 24 * 3600, retry=Retry(max=5, interval=[5, 30, 120, 600, 1800]),
        description=f"{event['job'].rsplit('.', 1)[-1]}{tuple(event['args'])}")
    return Outcome.QUEUED


def accept_job(conn: redis.Redis, queue_name: str, spool_dir: Path, dedupe_key: str,
               job: str, *args, event_id: str | None = None) -> Outcome:
    """Claim `dedupe_key` once and enqueue `job(*args)`; spool it when Redis cannot.

    For events that are a hint to re-read state (Zendesk events, delivery
    reports): `args` are ids and codes, never personal data.
    """
    event = {"kind": "job", "event_id": event_id or uuid.uuid4().hex, "dedupe_key": dedupe_key,
             "received_at": time.time(), "job": job, "args": list(args)}
    return _take(conn, queue_name, spool_dir, event)


def _forward(conn: redis.Redis, queue_name: str, event: dict, urgent: str | None) -> Outcome:
    forward = _queue_job if event.get("kind") == "job" else _queue
    return forward(conn, queue_name, event, urgent)


def _take(conn: redis.Redis, queue_name: str, spool_dir: Path, event: dict,
          urgent: str | None = None) -> Outcome:
    """Queue `event`, or write it to the spool when Redis cannot take it."""
    try:
        return _forward(conn, queue_name, event, urgent)
    except UNAVAILABLE as exc:
        spool.write(spool_dir, event)
        log.warning("intake.spooled", extra={"event_id": event["event_id"],
                                             "reason": type(exc).__name__})
        return Outcome.SPOOLED


def envelope(message, blobs: dict[str, bytes] | None = None, urgent: bool = False) -> dict:
    """What is queued or spooled for a normalised event (and its attachments' bytes)."""
    return {
        "urgent": urgent,
        "first_reply": not urgent and may_start_reply(message),
        "blobs": {k: base64.b64encode(v).decode() for k, v in (blobs or {}).items()},
        "event_id": message.event_id,
        "dedupe_key": message.dedupe_key,
        "conversation_key": message.conversation_key,
        "received_at": message.received_at,
        "data": message.to_dict(),
    }


def accept(conn: redis.Redis, queue_name: str, spool_dir: Path, message,
           blobs: dict[str, bytes] | None = None, *, triage=None,
           urgent_queue: str | None = None) -> Outcome:
    """Take `message` in: queued, dropped as a duplicate, or spooled when Redis cannot.

    An emergency (the caller's choice, or an emergency rule of `triage` — rules only, the
    model runs in the worker) goes on `urgent_queue` (default: `<queue_name>-urgent`).
    """
    return _take(conn, queue_name, spool_dir, envelope(message, blobs, is_urgent(message, triage)),
                 urgent_queue)


def drain_spool(conn: redis.Redis, queue_name: str, spool_dir: Path,
                urgent_queue: str | None = None) -> int:
    """Forward spooled events to Redis, oldest first; returns how many went.

    Stops at the first Redis failure (it is still down) and leaves the rest.
    Forwarding twice is harmless: the claim token is the event's own id.
    """
    sent = 0
    for path in spool.pending(spool_dir):
        event = spool.read(path)
        if event is None:
            continue
        token = tracing.set_event(event["event_id"])  # its jobs carry its id
        try:
            outcome = _forward(conn, queue_name, event, urgent_queue)
        except UNAVAILABLE:
            break
        finally:
            tracing.reset(token)
        path.unlink(missing_ok=True)
        sent += 1
        log.info("intake.unspooled", extra={"event_id": event["event_id"],
                                            "outcome": outcome.value})
    return sent


SWEEP_AFTER = 10.0   # seconds a conversation's oldest event waits before the sweep looks


def _job_alive(conn: redis.Redis, job: str) -> bool:
    """Whether the job holding a claim will still run: waiting in its queue, or scheduled.

    A job popped by a worker that died before recording it (RQ pops with
    BLPOP when it listens on several queues) is in neither: it is lost.
    """
    try:
        found = Job.fetch(job, connection=conn)
    except NoSuchJobError:
        return False
    status = found.get_status(refresh=False)
    if status == JobStatus.SCHEDULED:
        return True
    if status == JobStatus.QUEUED:
        return conn.lpos(f"rq:queue:{found.origin}", job) is not None
    return False


def sweep_stale(conn: redis.Redis, queue_name: str, older_than: float = SWEEP_AFTER) -> int:
    """Re-offer conversations whose pending events have waited too long.

    Covers a worker killed mid-job (its events are still pending; its lock,
    renewed only while it lives, expires within seconds) and a job lost
    between pop and start. A conversation whose lock is held, or whose job
    is still waiting or scheduled, is left alone. Returns how many were offered.
    """
    cutoff = int((time.time() - older_than) * 1000)
    stale = conn.zrangebyscore(keys.PENDING_INDEX, 0, cutoff, start=0, num=100)
    offered = 0
    for raw in stale:
        conv_id = raw.decode() if isinstance(raw, bytes) else raw
        if conn.exists(keys.lock(conv_id)):
            continue
        holder = conn.get(keys.queued(conv_id))
        if holder and _job_alive(conn, holder.decode()):
            continue
        conn.delete(keys.queued(conv_id))
        enqueue_conversation(conn, queue_name, conv_id)
        conn.zadd(keys.PENDING_INDEX, {conv_id: int(time.time() * 1000)}, xx=True)
        offered += 1
    return offered
