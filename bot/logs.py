"""JSON log lines with stable keys (SPEC 11), through python-json-logger.

One object a line: `ts`, `level`, `logger`, `event` (the message, a stable
key such as `conversation.written`), `event_id` when the line is about an
accepted event (see `bot.tracing`), and the call's `extra` fields. Callers
mask personal data before logging.
"""
from __future__ import annotations

import logging
import sys
from typing import IO

from pythonjsonlogger import json as jsonlogger

from bot import tracing

FIELDS = {"asctime": "ts", "levelname": "level", "name": "logger", "message": "event",
          "exc_info": "exc"}


class JsonFormatter(jsonlogger.JsonFormatter):
    """python-json-logger's formatter with Hotline's keys."""

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s", rename_fields=FIELDS,
                         datefmt="%Y-%m-%dT%H:%M:%S", json_ensure_ascii=False)


class EventIdFilter(logging.Filter):
    """Adds the current event id to every record that does not name one itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "event_id", None) is None:
            event_id = tracing.current()
            if event_id:
                record.event_id = event_id
        return True


def handler(stream: IO[str] | None = None) -> logging.Handler:
    """A handler writing Hotline's JSON lines to `stream` (default stderr)."""
    out = logging.StreamHandler(stream or sys.stderr)
    out.setFormatter(JsonFormatter())
    out.addFilter(EventIdFilter())
    return out


def setup(level: str = "INFO") -> None:
    """Send the `hotline` loggers to stderr as JSON, once."""
    logger = logging.getLogger("hotline")
    if any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        return
    logger.addHandler(handler())
    logger.setLevel(level)
    logger.propagate = False
