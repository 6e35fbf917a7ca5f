"""What every webhook shares: the web tier's state, a one-line 400, the intake call, and
the one log line and count per webhook event (SPEC 11)."""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

import redis
from flask import current_app, g, jsonify, request

from bot import intake, metrics, tracing
from bot.config import Config

log = logging.getLogger("hotline.web")


@dataclass
class WebState:
    config: Config
    redis: redis.Redis
    settings: object = None      # bot.settings.Settings
    templates: object = None     # bot.replies.Templates


def state() -> WebState:
    return current_app.extensions["hotline"]


def bad_request(reason: str):
    """A malformed payload: 400 with a one-line reason."""
    return jsonify(error="bad_request", reason=reason), 400


def _taken(event_id: str, outcome: intake.Outcome) -> intake.Outcome:
    g.hotline_event = (event_id, outcome.counted)
    return outcome


def accept(event, blobs: dict[str, bytes] | None = None) -> intake.Outcome:
    """Hand a normalised event to intake; it becomes this request's event."""
    st = state()
    tracing.set_event(event.event_id)
    return _taken(event.event_id, intake.accept(
        st.redis, st.config.queue_name, st.config.spool_dir, event, blobs,
        triage=st.settings.triage if st.settings else None,
        urgent_queue=st.config.urgent_queue_name))


def accept_job(dedupe_key: str, job: str, *args) -> intake.Outcome:
    """Hand a hint (Zendesk event, delivery report, call end) to intake as a job."""
    st = state()
    event_id = uuid.uuid4().hex
    tracing.set_event(event_id)
    return _taken(event_id, intake.accept_job(st.redis, st.config.queue_name, st.config.spool_dir,
                                              dedupe_key, job, *args, event_id=event_id))


# Which webhook is which source of `hotline_events_total`; the endpoints listed in
# EVENT_ENDPOINTS deliver events (an answer without one is `ignored`), the others
# are steps of a call (only counted when refused).
SOURCES = {"twilio_sms.inbound_sms": "sms", "twilio_sms.sms_status": "status",
           "zendesk.events": "zendesk", "sendgrid.inbound": "email"}
EVENT_ENDPOINTS = set(SOURCES) | {"twilio_voice.recorded", "twilio_voice.transcription",
                                  "twilio_voice.call_status"}
REFUSED = {400, 401, 403, 405, 413}


def begin_request() -> None:
    g.hotline_trace = tracing.set_event(None)


def end_request(_exc=None) -> None:
    token = g.pop("hotline_trace", None)
    if token is not None:
        tracing.reset(token)


def observe(response):
    """After a webhook: one log line and one count for its event (or its refusal)."""
    endpoint = request.endpoint or ""
    source = SOURCES.get(endpoint) or ("voice" if endpoint.startswith("twilio_voice.") else None)
    if source is None:
        return response
    event_id, outcome = g.get("hotline_event", (None, None))
    if outcome is None:
        if response.status_code in REFUSED:
            outcome = "refused"
        elif endpoint in EVENT_ENDPOINTS:
            outcome = "ignored"
        else:
            return response
    metrics.event(state().redis, source, outcome)
    log.info(f"webhook.{outcome}", extra={"source": source, "status": response.status_code,
                                          "path": request.path, "event_id": event_id})
    return response
