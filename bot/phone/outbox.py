"""The local outbox: outbound texts in SQLite, for `make run` without Twilio credentials."""
from __future__ import annotations

import sqlite3
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import requests

from bot.errors import PermanentError
from bot.phone import MediaFile, read_limited


class LocalOutbox:
    """`bot.phone.Phone` that keeps every text in a table a browser can show."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.execute("CREATE TABLE IF NOT EXISTS outbox (sid TEXT PRIMARY KEY, to_number TEXT,"
                       " body TEXT, created_at TEXT)")

    @contextmanager
    def _db(self):
        db = sqlite3.connect(self.path, timeout=10)
        db.row_factory = sqlite3.Row
        try:
            yield db
            db.commit()
        finally:
            db.close()

    def send_sms(self, to: str, body: str) -> str:
        sid = "SMlocal" + uuid.uuid4().hex[:25]
        with self._db() as db:
            db.execute("INSERT INTO outbox VALUES (?, ?, ?, ?)",
                       (sid, to, body, datetime.now(timezone.utc).isoformat(timespec="seconds")))
        return sid

    def fetch_media(self, url: str, max_bytes: int) -> MediaFile:
        try:
            with requests.get(url, timeout=10, stream=True) as resp:
                resp.raise_for_status()
                return MediaFile(read_limited(resp, max_bytes),
                                 resp.headers.get("Content-Type", "application/octet-stream"))
        except requests.RequestException as exc:
            raise PermanentError(f"local media download failed: {exc}") from exc

    def messages(self) -> list[dict]:
        with self._db() as db:
            return [dict(r) for r in db.execute(
                "SELECT * FROM outbox ORDER BY created_at DESC, rowid DESC LIMIT 200")]
