"""The local desk: tickets in SQLite, for `make run` without Zendesk credentials.

Behaves like Zendesk where Hotline depends on it (statuses, closed tickets
refusing updates, safe updates, follow-ups) so rules and templates can be
tried before touching production. Tests of Zendesk behaviour use the real
zenpy client against `responses`, never this.
"""
from __future__ import annotations

import json
import sqlite3
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from bot.desk import DeskComment, NewComment, NewTicket, Ticket
from bot.errors import NotFound, TicketClosed, UpdateConflict

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, name TEXT, phone TEXT UNIQUE,
  role TEXT DEFAULT 'end-user');
CREATE TABLE IF NOT EXISTS tickets (
  id INTEGER PRIMARY KEY AUTOINCREMENT, status TEXT, requester_id INTEGER, subject TEXT, tags TEXT,
  external_id TEXT, followup_of INTEGER, custom_fields TEXT, created_at TEXT, updated_at TEXT);
CREATE TABLE IF NOT EXISTS comments (
  id INTEGER PRIMARY KEY AUTOINCREMENT, ticket_id INTEGER, author_id INTEGER, body TEXT, public INTEGER,
  uploads TEXT, batch_id TEXT, created_at TEXT);
CREATE TABLE IF NOT EXISTS uploads (
  token TEXT PRIMARY KEY, filename TEXT, content_type TEXT, size INTEGER, content BLOB);
"""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


class LocalDesk:
    """`bot.desk.Desk` over a SQLite file."""

    def __init__(self, path: Path, base_url: str = ""):
        self.base_url = base_url
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.executescript(SCHEMA)
            columns = {r["name"] for r in db.execute("PRAGMA table_info(users)")}
            if "role" not in columns:  # a desk made by an earlier version
                db.execute("ALTER TABLE users ADD COLUMN role TEXT DEFAULT 'end-user'")
            if "priority" not in {r["name"] for r in db.execute("PRAGMA table_info(tickets)")}:
                db.execute("ALTER TABLE tickets ADD COLUMN priority TEXT")
                db.execute("ALTER TABLE tickets ADD COLUMN group_id INTEGER")

    @contextmanager
    def _db(self):
        db = sqlite3.connect(self.path, timeout=10)
        db.row_factory = sqlite3.Row
        try:
            db.execute("PRAGMA journal_mode=WAL")
            yield db
            db.commit()
        finally:
            db.close()

    @staticmethod
    def _ticket(row) -> Ticket:
        return Ticket(id=row["id"], status=row["status"], requester_id=row["requester_id"],
                      updated_at=row["updated_at"], tags=(row["tags"] or "").split(),
                      priority=row["priority"])

    def find_user_by_phone(self, phone: str) -> int | None:
        with self._db() as db:
            row = db.execute("SELECT id FROM users WHERE phone = ?", (phone,)).fetchone()
        return row["id"] if row else None

    def find_user_by_email(self, email: str) -> int | None:
        return self.find_user_by_phone(f"email:{email}")

    def create_user(self, name: str, phone: str | None = None, email: str | None = None) -> int:
        # One contact column: a phone number, or "email:<address>".
        contact = phone or f"email:{email}"
        with self._db() as db:
            db.execute("INSERT OR IGNORE INTO users (name, phone) VALUES (?, ?)", (name, contact))
            return db.execute("SELECT id FROM users WHERE phone = ?", (contact,)).fetchone()["id"]

    def get_ticket(self, ticket_id: int) -> Ticket | None:
        with self._db() as db:
            row = db.execute("SELECT * FROM tickets WHERE id = ?", (ticket_id,)).fetchone()
        return self._ticket(row) if row else None

    def ticket_for_followup(self, ticket_id: int) -> Ticket | None:
        return self.get_ticket(ticket_id)  # local users have no time zone

    def find_ticket_by_external_id(self, external_id: str) -> Ticket | None:
        with self._db() as db:
            row = db.execute("SELECT * FROM tickets WHERE external_id = ?", (external_id,)).fetchone()
        return self._ticket(row) if row else None

    def create_ticket(self, ticket: NewTicket) -> Ticket:
        now = _now()
        with self._db() as db:
            cur = db.execute(
                "INSERT INTO tickets (status, requester_id, subject, tags, external_id, followup_of,"
                " custom_fields, created_at, updated_at, priority, group_id)"
                " VALUES ('new', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (ticket.requester_id, ticket.subject, " ".join(ticket.tags), ticket.external_id,
                 ticket.followup_of, json.dumps(ticket.custom_fields), now, now,
                 ticket.priority, ticket.group_id))
            self._insert_comment(db, cur.lastrowid, ticket.comment, None, now)
            row = db.execute("SELECT * FROM tickets WHERE id = ?", (cur.lastrowid,)).fetchone()
        return self._ticket(row)

    def add_comment(self, ticket_id: int, comment: NewComment, *, status: str | None = None,
                    updated_stamp: str | None = None, batch_id: str | None = None,
                    add_tags: list[str] | None = None,
                    remove_tags: list[str] | None = None,
                    priority: str | None = None) -> Ticket:
        now = _now()
        with self._db() as db:
            row = db.execute("SELECT * FROM tickets WHERE id = ?", (ticket_id,)).fetchone()
            if row is None:  # deleted, as Zendesk answers 404: the conversation starts afresh
                raise NotFound("local ticket not found", status=404)
            if row["status"] == "closed":
                raise TicketClosed("ticket is closed", status=422)
            if updated_stamp and row["updated_at"] != updated_stamp:
                raise UpdateConflict("ticket changed", status=409)
            tags = [t for t in (row["tags"] or "").split() if t not in (remove_tags or [])]
            tags += [t for t in (add_tags or []) if t not in tags]
            db.execute("UPDATE tickets SET status = ?, updated_at = ?, tags = ?, priority = ?"
                       " WHERE id = ?", (status or row["status"], now, " ".join(tags),
                                         priority or row["priority"], ticket_id))
            self._insert_comment(db, ticket_id, comment, batch_id, now)
            row = db.execute("SELECT * FROM tickets WHERE id = ?", (ticket_id,)).fetchone()
        return self._ticket(row)

    @staticmethod
    def _insert_comment(db, ticket_id, comment: NewComment, batch_id, now) -> None:
        db.execute(
            "INSERT INTO comments (ticket_id, author_id, body, public, uploads, batch_id, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (ticket_id, comment.author_id, comment.body, int(comment.public),
             json.dumps(comment.uploads), batch_id, now))

    def comments(self, ticket_id: int) -> list[DeskComment]:
        with self._db() as db:
            rows = db.execute("SELECT * FROM comments WHERE ticket_id = ? ORDER BY id",
                              (ticket_id,)).fetchall()
        return [DeskComment(id=r["id"], author_id=r["author_id"], public=bool(r["public"]),
                            body=r["body"], created_at=r["created_at"]) for r in rows]

    def user_roles(self, user_ids: list[int]) -> dict[int, str]:
        with self._db() as db:
            rows = db.execute(f"SELECT id, role FROM users WHERE id IN ({','.join('?' * len(user_ids))})",
                              list(user_ids)).fetchall() if user_ids else []
        return {r["id"]: r["role"] for r in rows}

    def count_requested(self, user_id: int) -> int:
        with self._db() as db:
            return db.execute("SELECT COUNT(*) FROM tickets WHERE requester_id = ?",
                              (user_id,)).fetchone()[0]

    def ticket_url(self, ticket_id: int) -> str:
        return f"{self.base_url}/local/desk/{ticket_id}"

    def me(self) -> int:
        return 0  # Hotline's own notes have no author in the local desk

    def agent_reply(self, ticket_id: int, body: str, public: bool = True) -> None:
        """What an agent does in Zendesk, for trying replies in local mode."""
        with self._db() as db:
            db.execute("INSERT OR IGNORE INTO users (name, phone, role) VALUES"
                       " ('Local Agent', 'local-agent', 'agent')")
            agent = db.execute("SELECT id FROM users WHERE phone = 'local-agent'").fetchone()["id"]
            now = _now()
            self._insert_comment(db, ticket_id, NewComment(body=body, author_id=agent, public=public),
                                 None, now)
            db.execute("UPDATE tickets SET updated_at = ?, status = CASE WHEN status = 'new'"
                       " THEN 'open' ELSE status END WHERE id = ?", (now, ticket_id))

    def add_tag(self, ticket_id: int, tag: str) -> None:
        with self._db() as db:
            row = db.execute("SELECT tags FROM tickets WHERE id = ?", (ticket_id,)).fetchone()
            tags = (row["tags"] or "").split()
            if tag not in tags:
                db.execute("UPDATE tickets SET tags = ?, updated_at = ? WHERE id = ?",
                           (" ".join(tags + [tag]), _now(), ticket_id))

    def batch_written(self, ticket_id: int, batch_id: str) -> bool:
        with self._db() as db:
            return db.execute("SELECT 1 FROM comments WHERE ticket_id = ? AND batch_id = ?",
                              (ticket_id, batch_id)).fetchone() is not None

    def upload(self, filename: str, content: bytes, content_type: str) -> str:
        token = uuid.uuid4().hex
        with self._db() as db:
            db.execute("INSERT INTO uploads VALUES (?, ?, ?, ?, ?)",
                       (token, filename, content_type, len(content), content))
        return token

    # -- for the browser view (web/local.py) and operators ------------------

    def set_status(self, ticket_id: int, status: str) -> None:
        with self._db() as db:
            db.execute("UPDATE tickets SET status = ?, updated_at = ? WHERE id = ?",
                       (status, _now(), ticket_id))

    def tickets(self) -> list[dict]:
        with self._db() as db:
            rows = db.execute(
                "SELECT t.*, u.name AS requester FROM tickets t LEFT JOIN users u"
                " ON u.id = t.requester_id ORDER BY t.id DESC LIMIT 200").fetchall()
        return [dict(r) for r in rows]

    def ticket_row(self, ticket_id: int) -> dict | None:
        """One ticket as the local desk page shows it, or None."""
        with self._db() as db:
            row = db.execute(
                "SELECT t.*, u.name AS requester FROM tickets t LEFT JOIN users u"
                " ON u.id = t.requester_id WHERE t.id = ?", (ticket_id,)).fetchone()
        return dict(row) if row else None

    def comment_rows(self, ticket_id: int) -> list[dict]:
        with self._db() as db:
            rows = db.execute(
                "SELECT c.*, u.name AS author FROM comments c LEFT JOIN users u"
                " ON u.id = c.author_id WHERE ticket_id = ? ORDER BY c.id", (ticket_id,)).fetchall()
        return [dict(r) for r in rows]

    def upload_content(self, token: str) -> dict | None:
        with self._db() as db:
            row = db.execute("SELECT * FROM uploads WHERE token = ?", (token,)).fetchone()
        return dict(row) if row else None
