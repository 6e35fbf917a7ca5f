"""What every webhook shares: the web tier's state, a one-line 400, the intake call."""
from __future__ import annotations

from dataclasses import dataclass

import redis
from flask import current_app, jsonify

from bot import intake
from bot.config import Config


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


def accept(event, blobs: dict[str, bytes] | None = None) -> intake.Outcome:
    st = state()
    return intake.accept(st.redis, st.config.queue_name, st.config.spool_dir, event, blobs)
