"""The console's pages for people: templates (built on the JSON API) and "try a text"."""
from __future__ import annotations

from itertools import groupby

from flask import Blueprint, abort, redirect, render_template, request, url_for

from bot.redact import redact
from bot.replies import SAMPLE, TemplateProblem
from handlers.common import state
from web.admin.api import store

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.get("/")
def home():
    return redirect(url_for("admin.templates"))


@bp.get("/templates")
def templates():
    rows = store().listing()
    groups = [(key, list(items)) for key, items in
              groupby(rows, key=lambda r: (r["channel"], r["name"]))]
    return render_template("admin/templates.html", title="Templates", groups=groups)


@bp.get("/templates/<channel>/<name>/<lang>")
def edit(channel, name, lang):
    tid = f"{channel}/{name}/{lang}"
    try:
        current = store().current(tid)
    except TemplateProblem:
        abort(404)
    return render_template("admin/edit.html", title=tid, t=current, channel=channel,
                           sample=SAMPLE)


@bp.route("/triage", methods=["GET", "POST"])
def triage():
    """Try a text: what triage decides for it, and why (nothing is stored or sent)."""
    text = request.form.get("text", "") if request.method == "POST" else ""
    decision = None
    if text.strip():
        decision = state().settings.triage.decide(redact(text))
    return render_template("admin/triage.html", title="Try a text", text=text,
                           decision=decision)
