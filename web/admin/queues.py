"""Queues, failed jobs (with replay), scheduled follow-ups and the spool, from RQ's registries.

rq-dashboard (a maintained blueprint) is mounted behind the sign-in at /admin/rq for
the full view of workers and every registry.
"""
from __future__ import annotations

from datetime import datetime, timezone

from flask import Blueprint, Flask, flash, redirect, render_template, url_for
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from bot import keys, spool
from handlers.common import state

bp = Blueprint("admin_queues", __name__, url_prefix="/admin")
SHOWN = 50


def _queue() -> Queue:
    st = state()
    return Queue(st.config.queue_name, connection=st.redis)


def _last_line(job: Job) -> str:
    result = job.latest_result()
    lines = (result.exc_string or "").strip().splitlines() if result else []
    return lines[-1] if lines else ""


def _jobs(queue: Queue, ids: list[str]) -> list[Job]:
    return [j for j in Job.fetch_many(ids[:SHOWN], connection=queue.connection) if j]


def spool_summary(spool_dir) -> dict:
    """How many events wait in this machine's spool, and since when."""
    waiting = spool.pending(spool_dir)
    oldest = None
    if waiting:
        ms = int(waiting[0].name.split("-", 1)[0])
        oldest = datetime.fromtimestamp(ms / 1000, timezone.utc)
    return {"count": len(waiting), "oldest": oldest}


@bp.get("/queues")
def queues():
    st = state()
    queue = _queue()
    failed = FailedJobRegistry(queue=queue)
    scheduled = ScheduledJobRegistry(queue=queue)
    scheduled_jobs = [(j, scheduled.get_scheduled_time(j.id))
                      for j in _jobs(queue, scheduled.get_job_ids())]
    failed_jobs = [(j, _last_line(j)) for j in _jobs(queue, failed.get_job_ids())]
    return render_template(
        "admin/queues.html", title="Queues", queue=queue, queued=len(queue),
        running=StartedJobRegistry(queue=queue).count, failed=failed_jobs,
        failed_count=failed.count, scheduled=sorted(scheduled_jobs, key=lambda p: p[1]),
        scheduled_count=scheduled.count, spool=spool_summary(st.config.spool_dir),
        set_aside=st.redis.scard(keys.DEAD_INDEX), shown=SHOWN,
        now=datetime.now(timezone.utc))


@bp.post("/queues/failed/<job_id>/requeue")
def requeue(job_id: str):
    try:
        FailedJobRegistry(queue=_queue()).requeue(job_id)
        flash("Job replayed: it is back in the queue.")
    except (NoSuchJobError, ValueError):
        flash("That job is no longer in the failed list.")
    return redirect(url_for("admin_queues.queues"))


@bp.post("/queues/failed/requeue")
def requeue_all():
    registry = FailedJobRegistry(queue=_queue())
    ids = registry.get_job_ids()
    for job_id in ids:
        try:
            registry.requeue(job_id)
        except (NoSuchJobError, ValueError):
            pass  # replayed by someone else meanwhile
    flash(f"{len(ids)} job(s) replayed.")
    return redirect(url_for("admin_queues.queues"))


def mount_dashboard(app: Flask, config) -> None:
    """rq-dashboard at /admin/rq; `auth.guard` keeps it behind the sign-in."""
    import rq_dashboard
    from rq_dashboard.web import setup_rq_connection

    app.config["RQ_DASHBOARD_REDIS_URL"] = config.redis_url
    app.register_blueprint(rq_dashboard.blueprint, url_prefix="/admin/rq")
    setup_rq_connection(app)
