"""Prometheus metrics kept in Redis, so every process adds to the same totals (SPEC 11).

Any number of web and worker processes on any number of machines share one
Redis (SPEC 2). `prometheus_client`'s multiprocess mode sums only the
processes of one machine (they share a directory), so the counts live in
Redis instead: a write is one pipelined round trip (HINCRBY/HINCRBYFLOAT on a
hash per metric), and `/metrics` reads them back at scrape time through a
`prometheus_client` custom collector. Whichever process is scraped, the totals
are the same.

The webhook's own count is deferred: kept in the process and sent by a
background thread every FLUSH_SECONDS, so the answer to Twilio never waits on
it. A write that Redis cannot take (it is down: the webhook spools) is kept
the same way and sent when Redis is back, so no count is lost to an outage
shorter than the process's life.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from pathlib import Path

import redis
from prometheus_client.core import (CollectorRegistry, CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.utils import floatToGoString
from rq import Queue

from bot import keys, spool
from bot.redisconn import UNAVAILABLE

log = logging.getLogger("hotline.metrics")

SEP = "\x1f"  # between label values in a hash field (never in a label value we write)

# name → (kind, help, label names, buckets for histograms)
JOB_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
DESK_BUCKETS = (0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300, 900, 3600)
METRICS = {
    "hotline_events_total": ("counter", "Webhook events by source and outcome.", ("source", "outcome"), ()),
    "hotline_api_requests_total": ("counter", "Zendesk and Twilio API calls by outcome.",
                                   ("api", "outcome"), ()),
    "hotline_followups_total": ("counter", "Follow-up steps by step and outcome.",
                                ("step", "outcome"), ()),
    "hotline_job_seconds": ("histogram", "Time an RQ job ran, by job.", ("job",), JOB_BUCKETS),
    "hotline_inbound_to_desk_seconds": ("histogram",
                                        "From the webhook accepting an event to its write to the desk.",
                                        (), DESK_BUCKETS),
}
# Read at scrape time, not stored.
GAUGES = {
    "hotline_queue_jobs": ("Jobs waiting in each RQ queue.", ("queue",)),
    "hotline_failed_jobs": ("Jobs in each RQ queue's failed registry.", ("queue",)),
    "hotline_spool_events": ("Events in this instance's local spool, waiting for Redis.", ()),
}


def _key(name: str) -> str:
    return f"{keys.PREFIX}metrics:{name}"


# -- writing -----------------------------------------------------------------

_unsent: Counter = Counter()   # (hash key, field) → amount Redis has not taken yet
_unsent_lock = threading.Lock()
FLUSH_SECONDS = 1.0
_flusher = {"pid": None, "conn": None}


def _write(conn: redis.Redis | None, incs: dict[tuple[str, str], float]) -> None:
    """Add `incs` to Redis in one round trip; keep them for later when it cannot."""
    with _unsent_lock:
        for k, v in incs.items():
            _unsent[k] += v
        if conn is None:
            return
        todo = dict(_unsent)
        _unsent.clear()
    if not todo:
        return
    pipe = conn.pipeline(transaction=False)
    for (key, field), amount in todo.items():
        if float(amount).is_integer():
            pipe.hincrby(key, field, int(amount))
        else:
            pipe.hincrbyfloat(key, field, amount)
    try:
        pipe.execute()
    except UNAVAILABLE:
        with _unsent_lock:
            for k, v in todo.items():
                _unsent[k] += v


def _defer(conn: redis.Redis, incs: dict[tuple[str, str], float]) -> None:
    """Keep `incs` in this process; a thread sends them every FLUSH_SECONDS.

    For the webhook path: its answer never waits on a metric's round trip.
    """
    _write(None, incs)
    if _flusher["pid"] != os.getpid():  # first use in this process (or a fork of it)
        _flusher["pid"] = os.getpid()
        threading.Thread(target=_flush_loop, name="hotline-metrics", daemon=True).start()
    _flusher["conn"] = conn


def _flush_loop() -> None:
    while True:
        time.sleep(FLUSH_SECONDS)
        if _unsent and _flusher["conn"] is not None:
            try:
                flush(_flusher["conn"])
            except Exception:  # the thread must outlive any single bad flush
                log.exception("metrics.flush-failed")


_flush_lock = threading.Lock()   # held while a flush is on its way to Redis


def flush(conn: redis.Redis) -> None:
    """Send what this process still holds (deferred counts, or kept during an outage)."""
    if _unsent:
        with _flush_lock:
            _write(conn, {})


def forget_unsent() -> None:
    """Drop what this process still holds for Redis, once no flush is under way (tests
    start from a clean slate: nothing of an earlier test's reaches their Redis later)."""
    with _flush_lock, _unsent_lock:
        _unsent.clear()


def _check(name: str, labels: tuple) -> None:
    if len(labels) != len(METRICS[name][2]):
        raise ValueError(f"{name} takes labels {METRICS[name][2]}")


def inc(conn: redis.Redis | None, name: str, *labels: str, amount: float = 1,
        defer: bool = False) -> None:
    """Add `amount` to counter `name` with `labels` (in METRICS' order); with `defer`,
    in this process now and in Redis within FLUSH_SECONDS."""
    _check(name, labels)
    incs = {(_key(name), SEP.join(labels)): amount}
    _defer(conn, incs) if defer else _write(conn, incs)


def observe(conn: redis.Redis | None, name: str, value: float, *labels: str) -> None:
    """Record `value` in histogram `name`."""
    observe_many(conn, name, [value], *labels)


def observe_many(conn: redis.Redis | None, name: str, values: list[float], *labels: str) -> None:
    """Record several values in histogram `name`, in one round trip."""
    _check(name, labels)
    buckets = METRICS[name][3]
    prefix = SEP.join(labels) + SEP
    incs: Counter = Counter()
    for value in values:
        index = next((i for i, b in enumerate(buckets) if value <= b), len(buckets))
        incs[(_key(name), f"{prefix}b{index}")] += 1
        incs[(_key(name), f"{prefix}sum")] += value
    _write(conn, dict(incs))


# The series SPEC 11 names, one small function each for the code that counts.

def event(conn, source: str, outcome: str, defer: bool = True) -> None:
    """A webhook's event (or one reconciliation took in): source sms|voice|email|zendesk|status;
    outcome accepted|duplicate|refused|spooled|ignored. Deferred by default: the webhook's
    answer does not wait for it."""
    inc(conn, "hotline_events_total", source, outcome, defer=defer)


def api_request(conn, api: str, outcome: str) -> None:
    """One Zendesk or Twilio HTTP call: outcome ok|rate_limited|error."""
    inc(conn, "hotline_api_requests_total", api, outcome)


def api_outcome(status: int | None) -> str:
    """`ok`, `rate_limited` (429) or `error` for an HTTP status (None: no answer)."""
    if status is None:
        return "error"
    return "ok" if status < 400 else "rate_limited" if status == 429 else "error"


def followup(conn, step: str, outcome: str) -> None:
    """A follow-up step ran (SPEC 7): step e.g. first_response, repage, reminder,
    last_notice, satisfaction; outcome e.g. escalated, sent, cancelled, skipped."""
    inc(conn, "hotline_followups_total", step, outcome)


def job_seconds(conn, job: str, seconds: float) -> None:
    observe(conn, "hotline_job_seconds", seconds, job)


def inbound_to_desk(conn, seconds: list[float]) -> None:
    """Each event of a batch just written to the desk: how long since it was accepted."""
    observe_many(conn, "hotline_inbound_to_desk_seconds", [max(0.0, s) for s in seconds])


# -- reading (scrape time) ---------------------------------------------------

def _s(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisCollector:
    """A `prometheus_client` collector: the shared totals from Redis, queue depths from
    RQ, and this instance's spool."""

    def __init__(self, conn: redis.Redis, spool_dir: Path):
        self.conn, self.spool_dir = conn, spool_dir

    def collect(self):
        spooled = GaugeMetricFamily("hotline_spool_events", GAUGES["hotline_spool_events"][0])
        spooled.add_metric([], len(spool.pending(self.spool_dir)))
        yield spooled
        try:
            stored = self._stored()
            queues = self._queues()
        except UNAVAILABLE:
            log.warning("metrics.redis-unavailable")
            return
        yield from stored
        yield from queues

    def _stored(self) -> list:
        pipe = self.conn.pipeline(transaction=False)
        for name in METRICS:
            pipe.hgetall(_key(name))
        out = []
        for name, raw in zip(METRICS, pipe.execute()):
            kind, help_text, label_names, buckets = METRICS[name]
            fields = {_s(k): float(_s(v)) for k, v in raw.items()}
            if kind == "counter":
                family = CounterMetricFamily(name.removesuffix("_total"), help_text,
                                             labels=label_names)
                for field, value in sorted(fields.items()):
                    family.add_metric(field.split(SEP) if label_names else [], value)
            else:
                family = HistogramMetricFamily(name, help_text, labels=label_names)
                series: dict[str, dict[str, float]] = {}
                for field, value in fields.items():
                    labels, _, part = field.rpartition(SEP)
                    series.setdefault(labels, {})[part] = value
                for labels, parts in sorted(series.items()):
                    running, cumulative = 0.0, []
                    for i, bound in enumerate(list(buckets) + [float("inf")]):
                        running += parts.get(f"b{i}", 0.0)
                        cumulative.append((floatToGoString(bound), running))
                    family.add_metric(labels.split(SEP) if label_names else [], cumulative,
                                      parts.get("sum", 0.0))
            out.append(family)
        return out

    def _queues(self) -> list:
        depth = GaugeMetricFamily("hotline_queue_jobs", GAUGES["hotline_queue_jobs"][0],
                                  labels=["queue"])
        failed = GaugeMetricFamily("hotline_failed_jobs", GAUGES["hotline_failed_jobs"][0],
                                   labels=["queue"])
        # Every queue RQ knows in this Redis (hotline, hotline-urgent, …), not a fixed list.
        for queue in sorted(Queue.all(connection=self.conn), key=lambda q: q.name):
            depth.add_metric([queue.name], queue.count)
            # ZCARD, not the registry's `count`, which also cleans up (a write).
            failed.add_metric([queue.name], self.conn.zcard(queue.failed_job_registry.key))
        return [depth, failed]


def render(conn: redis.Redis, spool_dir: Path) -> tuple[bytes, str]:
    """The Prometheus text exposition and its content type."""
    flush(conn)  # this process's own counts are in the totals it shows
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisCollector(conn, spool_dir))
    return generate_latest(registry), CONTENT_TYPE_LATEST


def exported_names() -> set[str]:
    """Every series name `/metrics` can show, with the suffixes Prometheus adds."""
    names = set(GAUGES)
    for name, (kind, *_rest) in METRICS.items():
        if kind == "counter":
            names.add(name)
        else:
            names |= {name + "_bucket", name + "_count", name + "_sum"}
    return names
