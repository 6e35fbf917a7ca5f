"""The help desk behind one small interface: Zendesk (zenpy) or the local SQLite desk.

Jobs talk to a `Desk`; which one is chosen by `bot.runtime` from the
configuration (SPEC 2 embedded defaults).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass
class Ticket:
    id: int
    status: str
    requester_id: int | None
    updated_at: str = ""       # Zendesk's stamp; also the safe-update token
    tags: list[str] = field(default_factory=list)
    priority: str | None = None
    requester_time_zone: str | None = None   # IANA name, when the desk knows it


@dataclass
class Attachment:
    name: str
    url: str
    content_type: str = ""


@dataclass
class DeskComment:
    """A comment as the desk reports it."""

    id: int
    author_id: int | None
    public: bool
    body: str
    created_at: str = ""
    attachments: list[Attachment] = field(default_factory=list)


@dataclass
class NewComment:
    body: str
    author_id: int | None = None   # None: Hotline's own API user (internal notes)
    public: bool = True
    uploads: list[str] = field(default_factory=list)


@dataclass
class NewTicket:
    requester_id: int
    subject: str
    comment: NewComment
    tags: list[str] = field(default_factory=list)
    external_id: str | None = None
    followup_of: int | None = None
    custom_fields: dict[int, str] = field(default_factory=dict)
    priority: str | None = None
    group_id: int | None = None


class Desk(Protocol):
    """What Hotline needs from a help desk."""

    def find_user_by_phone(self, phone: str) -> int | None: ...

    def find_user_by_email(self, email: str) -> int | None: ...

    def create_user(self, name: str, phone: str | None = None, email: str | None = None) -> int: ...

    def get_ticket(self, ticket_id: int) -> Ticket | None: ...

    def ticket_for_followup(self, ticket_id: int) -> Ticket | None:
        """The ticket with its requester's time zone, in one request (SPEC 7)."""

    def find_ticket_by_external_id(self, external_id: str) -> Ticket | None: ...

    def create_ticket(self, ticket: NewTicket) -> Ticket: ...

    def add_comment(self, ticket_id: int, comment: NewComment, *, status: str | None = None,
                    updated_stamp: str | None = None, batch_id: str | None = None,
                    add_tags: list[str] | None = None,
                    remove_tags: list[str] | None = None,
                    priority: str | None = None) -> Ticket: ...

    def count_requested(self, user_id: int) -> int:
        """How many tickets the user has requested, this one included."""

    def ticket_url(self, ticket_id: int) -> str:
        """Where an agent opens the ticket."""

    def comments(self, ticket_id: int) -> list[DeskComment]:
        """The ticket's comments, oldest first."""

    def user_roles(self, user_ids: list[int]) -> dict[int, str]:
        """`end-user`, `agent` or `admin` for each id."""

    def me(self) -> int:
        """The id of the user Hotline's API calls act as."""

    def batch_written(self, ticket_id: int, batch_id: str) -> bool: ...

    def upload(self, filename: str, content: bytes, content_type: str) -> str: ...
