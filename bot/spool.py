"""The local durable spool: where an accepted event waits while Redis cannot take it.

Each event is one file, written to a temporary name, fsynced, renamed into
place and the directory fsynced, so an answer of 2xx to Twilio means the event
is on disk (SPEC 3.4).
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger("hotline.spool")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write(spool_dir: Path, event: dict) -> Path:
    """Store `event` durably; returns the file's path."""
    spool_dir.mkdir(parents=True, exist_ok=True)
    name = f"{int(event['received_at'] * 1000):013d}-{event['event_id']}.json"
    final = spool_dir / name
    tmp = spool_dir / f".{name}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(event, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    _fsync_dir(spool_dir)
    return final


def pending(spool_dir: Path) -> list[Path]:
    """Spooled events, oldest first."""
    if not spool_dir.is_dir():
        return []
    return sorted(p for p in spool_dir.glob("*.json") if not p.name.startswith("."))


def read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None  # another process forwarded it first
    except ValueError:
        bad = path.with_suffix(".corrupt")
        os.replace(path, bad)
        log.error("spool.corrupt-file", extra={"file": bad.name})
        return None
