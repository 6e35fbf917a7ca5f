"""The local desk and outbox in the browser (local mode only, SPEC 2)."""
from __future__ import annotations

from datetime import datetime, timezone

from flask import Blueprint, Response, abort, redirect, render_template_string, request, url_for

from bot import jobs
from bot.desk.local import LocalDesk
from bot.phone.outbox import LocalOutbox
from handlers.common import state

bp = Blueprint("local", __name__, url_prefix="/local")

STATUSES = ("new", "open", "pending", "hold", "solved", "closed")

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Hotline local — {{ title }}</title>
<style>
 body{font:15px/1.4 system-ui,sans-serif;margin:2rem;max-width:60rem;color:#222}
 nav a{margin-right:1rem} table{border-collapse:collapse;width:100%}
 td,th{border-bottom:1px solid #ddd;padding:.4rem;text-align:left;vertical-align:top}
 .internal{background:#fff8dc} .pub{background:#eef6ff} pre{white-space:pre-wrap;margin:0}
 .tag{background:#eee;border-radius:3px;padding:0 .3rem;margin-right:.2rem;font-size:.85em}
 textarea{width:100%;max-width:40rem;box-sizing:border-box}
 .prio-urgent{color:#b00;font-weight:bold} .prio-high{color:#c60} .zone{color:#666;font-size:.9em}
</style></head><body>
<nav><strong>Hotline local mode</strong> · <a href="{{ url_for('local.desk') }}">Desk</a>
<a href="{{ url_for('local.outbox') }}">Outbox</a>
<a href="/admin/">Operators' console</a>
<span class="zone">Times in {{ zone }}</span></nav>
<h1>{{ title }}</h1>
{% block body %}{% endblock %}
</body></html>"""

DESK = PAGE.replace("{% block body %}{% endblock %}", """
{% if not tickets %}<p>No tickets yet. Try
<code>flask hotline simulate sms --from +15551230001 "my dog is hurt"</code></p>{% endif %}
<table><tr><th>#</th><th>Status</th><th>Priority</th><th>Subject</th><th>Requester</th><th>Tags</th><th>Updated</th></tr>
{% for t in tickets %}<tr><td><a href="{{ url_for('local.ticket', ticket_id=t.id) }}">{{ t.id }}</a></td>
<td>{{ t.status }}</td><td class="prio-{{ t.priority }}">{{ t.priority or '-' }}</td><td>{{ t.subject }}</td><td>{{ t.requester }}</td>
<td>{% for tag in t.tags.split() %}<span class="tag">{{ tag }}</span>{% endfor %}</td>
<td>{{ t.updated_at|local_time }}</td></tr>{% endfor %}</table>""")

TICKET = PAGE.replace("{% block body %}{% endblock %}", """
<p>Status <strong>{{ t.status }}</strong> · priority <strong class="prio-{{ t.priority }}">{{ t.priority or '-' }}</strong> · requester {{ t.requester }}
{% if t.followup_of %}· follow-up of <a href="{{ url_for('local.ticket', ticket_id=t.followup_of) }}">#{{ t.followup_of }}</a>{% endif %}
· tags {% for tag in t.tags.split() %}<span class="tag">{{ tag }}</span>{% endfor %}</p>
<form method="post" action="{{ url_for('local.run_followups', ticket_id=t.id) }}">
<p>Scheduled follow-ups:
{% for f in followups %}<span class="tag">{{ f.step }} · due {{ f.due|local_time }}</span>
{% else %}none{% endfor %}
{% if followups %}<button title="Local mode: run them now, as if they were due">Run due now</button>{% endif %}</p></form>
<form method="post" action="{{ url_for('local.set_status', ticket_id=t.id) }}">Set status:
{% for s in statuses %}<button name="status" value="{{ s }}">{{ s }}</button>{% endfor %}</form>
<form method="post" action="{{ url_for('local.reply', ticket_id=t.id) }}">
<p><textarea name="body" rows="3" cols="70" placeholder="Reply as an agent (texted to the customer when public)"></textarea><br>
<label><input type="checkbox" name="private" value="1"> internal note</label>
<button>Reply as agent</button></p></form>
<form method="post" action="{{ url_for('local.tag', ticket_id=t.id) }}">
<p>Macro: <select name="tag">{% for m in macros %}<option>hotline_send_{{ m }}</option>{% endfor %}</select>
<button>Add tag</button></p></form>
<table>{% for c in comments %}<tr class="{{ 'pub' if c.public else 'internal' }}">
<td>{{ c.created_at|local_time }}<br>{{ c.author or 'Hotline' }}<br>{{ 'public' if c.public else 'internal note' }}</td>
<td><pre>{{ c.body }}</pre>{% for u in c.uploads %}<a href="{{ url_for('local.upload', token=u) }}">attachment</a> {% endfor %}</td></tr>
{% endfor %}</table>""")

OUTBOX = PAGE.replace("{% block body %}{% endblock %}", """
<table><tr><th>When</th><th>To</th><th>Text</th></tr>
{% for m in messages %}<tr><td>{{ m.created_at|local_time }}</td><td>{{ m.to_number }}</td><td><pre>{{ m.body }}</pre></td></tr>
{% else %}<tr><td colspan="3">Nothing sent yet.</td></tr>{% endfor %}</table>""")


def _desk() -> LocalDesk:
    return LocalDesk(state().config.local_db)


@bp.app_template_filter("local_time")
def local_time(stamp) -> str:
    """A stored UTC time stamp (text or datetime) in the team's time zone, zone named."""
    if isinstance(stamp, datetime):
        when = stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)
    else:
        try:
            when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        except (AttributeError, ValueError):
            return stamp or ""
    return when.astimezone(state().settings.timezone).strftime("%Y-%m-%d %H:%M:%S %Z")


@bp.context_processor
def zone() -> dict:
    return {"zone": str(state().settings.timezone)}


def _existing(ticket_id: int) -> LocalDesk:
    """The desk, after making sure the ticket exists (404 otherwise, nothing changed)."""
    desk = _desk()
    if desk.ticket_row(ticket_id) is None:
        abort(404)
    return desk


@bp.get("/")
@bp.get("/desk")
def desk():
    return render_template_string(DESK, title="Desk", tickets=_desk().tickets())


@bp.get("/desk/<int:ticket_id>")
def ticket(ticket_id: int):
    import json

    d = _existing(ticket_id)
    comments = d.comment_rows(ticket_id)
    for c in comments:
        c["uploads"] = json.loads(c["uploads"] or "[]")
    macros = sorted({p.name.split(".")[0] for p in (state().config.templates_dir / "sms").glob("*.txt")}
                    - {"oncall", "oncall_overdue"})  # on-call pages are not for customers
    st = state()
    return render_template_string(TICKET, title=f"Ticket #{ticket_id}", t=d.ticket_row(ticket_id),
                                  comments=comments, statuses=STATUSES, macros=macros,
                                  followups=jobs.scheduled_followups(st.redis, st.config, ticket_id))


@bp.post("/desk/<int:ticket_id>/followups")
def run_followups(ticket_id: int):
    """Try the ticket's follow-ups without waiting: a worker runs them now, as if due."""
    _existing(ticket_id)
    st = state()
    jobs.run_followups_now(st.redis, st.config, ticket_id)
    return redirect(url_for("local.ticket", ticket_id=ticket_id))


def _hint(ticket_id: int) -> None:
    """What Zendesk's webhook does after an agent acts: ask a worker to sync the ticket."""
    import uuid

    from bot import intake

    st = state()
    intake.accept_job(st.redis, st.config.queue_name, st.config.spool_dir,
                      f"local:event:{uuid.uuid4().hex}", "bot.jobs.sync_ticket", ticket_id)


@bp.post("/desk/<int:ticket_id>/reply")
def reply(ticket_id: int):
    desk = _existing(ticket_id)
    body = request.form.get("body", "").strip()
    if body:
        desk.agent_reply(ticket_id, body, public=not request.form.get("private"))
        _hint(ticket_id)
    return redirect(url_for("local.ticket", ticket_id=ticket_id))


@bp.post("/desk/<int:ticket_id>/tag")
def tag(ticket_id: int):
    name = request.form.get("tag", "")
    if not name.startswith("hotline_send_"):
        abort(400)
    _existing(ticket_id).add_tag(ticket_id, name)
    _hint(ticket_id)
    return redirect(url_for("local.ticket", ticket_id=ticket_id))


@bp.post("/desk/<int:ticket_id>/status")
def set_status(ticket_id: int):
    status = request.form.get("status", "")
    if status not in STATUSES:
        abort(400)
    _existing(ticket_id).set_status(ticket_id, status)
    _hint(ticket_id)  # as Zendesk's status_changed event does: follow-ups follow the status
    return redirect(url_for("local.ticket", ticket_id=ticket_id))


@bp.get("/uploads/<token>")
def upload(token: str):
    found = _desk().upload_content(token)
    if not found:
        abort(404)
    return Response(found["content"], mimetype=found["content_type"])


@bp.get("/outbox")
def outbox():
    return render_template_string(OUTBOX, title="Outbox",
                                  messages=LocalOutbox(state().config.local_db).messages())
