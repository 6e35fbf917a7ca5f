"""One `event_id` from a webhook to every job, desk write and text it causes (SPEC 11).

The id lives in a context variable. The web tier sets it when it accepts an
event; `Queue` copies it into each job it enqueues (RQ's job `meta`, never
the job's arguments); `job` — a decorator on every job function — sets it
again in the worker while the job runs, and times the job. `bot.logs` adds it
to every log line, so one id follows the event through the logs.
"""
from __future__ import annotations

import contextvars
import functools
import time

import rq
from rq import get_current_job

from bot import metrics

_event_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("hotline_event_id",
                                                                       default=None)


def current() -> str | None:
    """The event this code runs for, if any."""
    return _event_id.get()


def set_event(event_id: str | None) -> contextvars.Token:
    """Make `event_id` the current event (until `reset(token)`)."""
    return _event_id.set(event_id)


def reset(token: contextvars.Token) -> None:
    _event_id.reset(token)


class Queue(rq.Queue):
    """`rq.Queue` that records the current event id in each job's `meta`."""

    def create_job(self, *args, **kwargs):
        event_id = current()
        if event_id:
            kwargs["meta"] = {"event_id": event_id, **(kwargs.get("meta") or {})}
        return super().create_job(*args, **kwargs)


def job(fn):
    """Decorate an RQ job function: the event id of the job that runs it is current
    while it runs, and its run time goes to `hotline_job_seconds{job}`."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        current_job = get_current_job()
        token = set_event((current_job.meta or {}).get("event_id") if current_job else None)
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            if current_job is not None:
                metrics.job_seconds(current_job.connection, fn.__name__,
                                    time.perf_counter() - started)
            reset(token)

    return wrapper
