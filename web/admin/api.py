"""The console's JSON API (SPEC 6), exactly as the operators' scripts call it.

A template is named by channel, name and language: `/admin/api/templates/sms/ack/en`.
"""
from __future__ import annotations

from flask import Blueprint, jsonify, request
from flask_login import current_user

from bot.replies import TemplateProblem
from bot.template_store import Refused, TemplateStore
from handlers.common import state

bp = Blueprint("admin_api", __name__, url_prefix="/admin/api")

TEMPLATE = "/templates/<channel>/<name>/<lang>"


def store() -> TemplateStore:
    st = state()
    return TemplateStore(st.redis, st.templates)


def _body(*fields: str) -> dict | tuple:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        return _bad("send a JSON object")
    missing = [f for f in fields if f not in data]
    if missing:
        return _bad(f"missing {', '.join(missing)}")
    return data


def _bad(reason: str):
    return jsonify(error="bad_request", reason=reason), 400


@bp.errorhandler(TemplateProblem)
def no_such_template(exc):
    return jsonify(error="not_found", reason=str(exc)), 404


@bp.get("/templates")
def list_templates():
    return jsonify(store().listing())


@bp.get(TEMPLATE)
def get_template(channel, name, lang):
    return jsonify(store().current(f"{channel}/{name}/{lang}"))


@bp.put(TEMPLATE)
def put_template(channel, name, lang):
    data = _body("body")
    if not isinstance(data, dict):
        return data
    if not isinstance(data["body"], str):
        return _bad("body must be a string")
    try:
        version = store().save(f"{channel}/{name}/{lang}", data["body"], current_user.id)
    except Refused as exc:
        return jsonify(errors=exc.check.errors, warnings=exc.check.warnings), 422
    return jsonify(version=version)


@bp.get(TEMPLATE + "/versions")
def versions(channel, name, lang):
    return jsonify([v.as_json() for v in store().versions(f"{channel}/{name}/{lang}")])


@bp.post(TEMPLATE + "/restore")
def restore(channel, name, lang):
    data = _body("version")
    if not isinstance(data, dict):
        return data
    if not isinstance(data["version"], int) or isinstance(data["version"], bool):
        return _bad("version must be an integer")
    tid = f"{channel}/{name}/{lang}"
    try:
        version = store().restore(tid, data["version"], current_user.id)
    except Refused as exc:  # e.g. the sample data changed since that version was saved
        return jsonify(errors=exc.check.errors, warnings=exc.check.warnings), 422
    return jsonify(version=version, restored=data["version"])


@bp.post("/preview")
def preview():
    data = _body("id", "body")
    if not isinstance(data, dict):
        return data
    if not isinstance(data["body"], str) or not isinstance(data["id"], str):
        return _bad("id and body must be strings")
    st = state()
    if data["id"] not in st.templates.ids():
        raise TemplateProblem(f"no template {data['id']}")
    return jsonify(st.templates.validate(data["id"], data["body"]).as_json())
