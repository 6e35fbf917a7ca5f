"""Accepting an event: claim it once, queue it in its conversation, hand it to RQ.

This is the only thing the web tier does with an event (SPEC 3.3, 3.4):

1. one Lua script atomically claims the provider's id (a duplicate stops
   here), gives the conversation an opaque id, and adds the event to the
   conversation's pending set, scored by the time it was received — so a
   conversation's messages reach Zendesk in the order they arrived, whichever
   worker takes them;
2. a job `process_conversation(conv_id)` is enqueued — its only argument is
   that opaque id, so no phone number or text sits in a job's arguments;
3. if Redis cannot do either, the event goes to the local spool and is
   forwarded from there later by `drain_spool`.
"""
from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from enum import Enum
from pathlib import Path

import redis
from rq import Retry

from bot import keys, spool, tracing
from bot.redisconn import UNAVAILABLE

log = logging.getLogger("hotline.intake")

# KEYS: seen, convids, pending index
# ARGV: claim token, claim ttl, conversation key, fresh conv id, event json, score, key prefix
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
return {1, id}
"""

JOB = "bot.jobs.process_conversation"


class Outcome(str, Enum):
    QUEUED = "queued"
    DUPLICATE = "duplicate"
    SPOOLED = "spooled"


def enqueue_conversation(conn: redis.Redis, queue_name: str, conv_id: str) -> None:
    """Ask a worker to bring conversation `conv_id` up to date in Zendesk."""
    tracing.Queue(queue_name, connection=conn).enqueue(
        JOB, conv_id, job_timeout=300, result_ttl=600, failure_ttl=30 * 24 * 3600,
        description=f"process_conversation({conv_id})")


def _queue(conn: redis.Redis, queue_name: str, event: dict) -> Outcome:
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
              keys.PREFIX])
    if not result or int(result[0]) == 0:
        return Outcome.DUPLICATE
    conv_id = result[1].decode() if isinstance(result[1], bytes) else result[1]
    enqueue_conversation(conn, queue_name, conv_id)
    return Outcome.QUEUED


_CLAIM = """
local claimed = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2])
if claimed or redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end
return 0
"""


def _queue_job(conn: redis.Redis, queue_name: str, event: dict) -> Outcome:
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


def _take(conn: redis.Redis, queue_name: str, spool_dir: Path, event: dict) -> Outcome:
    """Queue `event`, or write it to the spool when Redis cannot take it."""
    forward = _queue_job if event.get("kind") == "job" else _queue
    try:
        return forward(conn, queue_name, event)
    except UNAVAILABLE as exc:
        spool.write(spool_dir, event)
        log.warning("intake.spooled", extra={"event_id": event["event_id"],
                                             "reason": type(exc).__name__})
        return Outcome.SPOOLED


def envelope(message, blobs: dict[str, bytes] | None = None) -> dict:
    """What is queued or spooled for a normalised event (and its attachments' bytes)."""
    return {
        "blobs": {k: base64.b64encode(v).decode() for k, v in (blobs or {}).items()},
        "event_id": message.event_id,
        "dedupe_key": message.dedupe_key,
        "conversation_key": message.conversation_key,
        "received_at": message.received_at,
        "data": message.to_dict(),
    }


def accept(conn: redis.Redis, queue_name: str, spool_dir: Path, message,
           blobs: dict[str, bytes] | None = None) -> Outcome:
    """Take `message` in: queued, dropped as a duplicate, or spooled when Redis cannot."""
    return _take(conn, queue_name, spool_dir, envelope(message, blobs))


def drain_spool(conn: redis.Redis, queue_name: str, spool_dir: Path) -> int:
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
            forward = _queue_job if event.get("kind") == "job" else _queue
            outcome = forward(conn, queue_name, event)
        except UNAVAILABLE:
            break
        finally:
            tracing.reset(token)
        path.unlink(missing_ok=True)
        sent += 1
        log.info("intake.unspooled", extra={"event_id": event["event_id"],
                                            "outcome": outcome.value})
    return sent


def sweep_stale(conn: redis.Redis, queue_name: str, older_than: float = 60.0) -> int:
    """Re-enqueue conversations whose pending events have waited too long.

    Covers a worker killed mid-job: its events are still pending, and this
    gives them to another worker.
    """
    cutoff = int((time.time() - older_than) * 1000)
    stale = conn.zrangebyscore(keys.PENDING_INDEX, 0, cutoff, start=0, num=100)
    for raw in stale:
        conv_id = raw.decode() if isinstance(raw, bytes) else raw
        if conn.exists(keys.lock(conv_id)):
            continue
        enqueue_conversation(conn, queue_name, conv_id)
        conn.zadd(keys.PENDING_INDEX, {conv_id: int(time.time() * 1000)}, xx=True)
    return len(stale)
