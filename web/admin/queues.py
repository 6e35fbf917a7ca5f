"""Queues, failed jobs (with replay), scheduled follow-ups and the spool, from RQ's registries.

Every queue a worker listens on (`Config.queues`: the urgent queue, the replies queue,
then the ordinary one) is shown: jobs and follow-ups fail and wait on their own queue.

rq-dashboard (a maintained blueprint) is mounted behind the sign-in at /admin/rq for
the full view of workers and every registry.
"""
from __future__ import annotations

from datetime import datetime, timezone

from flask import Blueprint, Flask, flash, redirect, render_template, url_for
from rq import Queue
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from bot import keys, spool
from bot.jobs import failure_reason
from handlers.common import state

bp = Blueprint("admin_queues", __name__, url_prefix="/admin")
SHOWN = 50


def _queues() -> list[Queue]:
    st = state()
    return [Queue(name, connection=st.redis) for name in st.config.queues]


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
    counts, failed_jobs, scheduled_jobs = [], [], []
    for queue in _queues():
        failed = FailedJobRegistry(queue=queue)
        scheduled = ScheduledJobRegistry(queue=queue)
        counts.append({"name": queue.name, "queued": len(queue),
                       "running": StartedJobRegistry(queue=queue).count,
                       "failed": failed.count, "scheduled": scheduled.count})
        failed_jobs += [(queue.name, j, failure_reason(j)) for j in _jobs(queue, failed.get_job_ids())]
        scheduled_jobs += [(queue.name, j, scheduled.get_scheduled_time(j.id))
                           for j in _jobs(queue, scheduled.get_job_ids())]
    total = {k: sum(c[k] for c in counts) for k in ("queued", "running", "failed", "scheduled")}
    return render_template(
        "admin/queues.html", title="Queues", counts=counts, total=total, failed=failed_jobs,
        scheduled=sorted(scheduled_jobs, key=lambda p: p[2]), spool=spool_summary(st.config.spool_dir),
        set_aside=st.redis.scard(keys.DEAD_INDEX), shown=SHOWN, now=datetime.now(timezone.utc))


@bp.post("/queues/failed/<job_id>/requeue")
def requeue(job_id: str):
    """Replay one failed job on the queue it failed on (any of `Config.queues`)."""
    try:
        origin = Job.fetch(job_id, connection=state().redis).origin
        [queue] = [q for q in _queues() if q.name == origin]  # ValueError: not one of ours
        FailedJobRegistry(queue=queue).requeue(job_id)
        flash(f"Job replayed: it is back in the {origin} queue.")
    except (NoSuchJobError, InvalidJobOperation, ValueError):
        flash("That job is no longer in the failed list.")
    return redirect(url_for("admin_queues.queues"))


@bp.post("/queues/failed/requeue")
def requeue_all():
    replayed = 0
    for queue in _queues():
        registry = FailedJobRegistry(queue=queue)
        for job_id in registry.get_job_ids():
            try:
                registry.requeue(job_id)
                replayed += 1
            except (NoSuchJobError, InvalidJobOperation, ValueError):
                pass  # replayed by someone else meanwhile
    flash(f"{replayed} job(s) replayed.")
    return redirect(url_for("admin_queues.queues"))


def mount_dashboard(app: Flask, config) -> None:
    """rq-dashboard at /admin/rq; `auth.guard` keeps it behind the sign-in."""
    import rq_dashboard
    from rq_dashboard.web import setup_rq_connection

    app.config["RQ_DASHBOARD_REDIS_URL"] = config.redis_url
    app.register_blueprint(rq_dashboard.blueprint, url_prefix="/admin/rq")
    setup_rq_connection(app)
