"""The Zendesk desk, through zenpy.

zenpy is configured so it never stalls a worker: an HTTP timeout on every
call, no object cache (not thread-safe), and a response hook that turns 429,
409, 422, 404 and 5xx into Hotline's own errors before zenpy's sleep-on-429
loop can see them — the job is scheduled for `Retry-After` instead. Every
answer is shown to the shared gate (`bot.ratelimit`), so the first 429 pauses
every worker and the per-minute budget follows what Zendesk reports.
"""
from __future__ import annotations

import io
import logging

import requests
from zenpy import Zenpy
from zenpy.lib.api_objects import Comment, Ticket as ZTicket, User

from bot import tracing
from bot.phones import fingerprint
from bot.desk import Attachment, DeskComment, NewComment, NewTicket, Ticket
from bot.errors import NotFound, PermanentError, TicketClosed, TransientError, UpdateConflict
from bot.metrics import api_outcome

log = logging.getLogger("hotline.zendesk")


def retry_after(response: requests.Response, default: float = 60.0) -> float:
    try:
        return max(0.0, float(response.headers.get("Retry-After", default)))
    except ValueError:
        return default


def _raise_for_status(response: requests.Response, *args, **kwargs) -> None:
    status = response.status_code
    if status < 400:
        return
    text = response.text[:500]
    if status == 429:
        raise TransientError("zendesk rate limited", status=429, retry_after=retry_after(response))
    if status >= 500:
        # A write may have been carried out before the 5xx (502/504 from a proxy):
        # the job checks (external_id, audit metadata) before writing again.
        raise TransientError(f"zendesk {status}", status=status,
                             unknown_outcome=response.request.method in ("POST", "PUT"))
    if status == 409:
        raise UpdateConflict("zendesk update conflict", status=409)
    if status == 404:
        raise NotFound("zendesk record not found", status=404)
    if status == 422 and "closed" in text.lower():
        raise TicketClosed("zendesk ticket is closed", status=422)
    raise PermanentError(f"zendesk {status}: {text}", status=status)


def _ticket(obj) -> Ticket:
    requester = getattr(obj, "requester_id", None)
    updated = getattr(obj, "updated_at", None) or ""
    return Ticket(id=int(obj.id), status=str(obj.status), requester_id=requester,
                  updated_at=str(updated), tags=list(getattr(obj, "tags", None) or []),
                  priority=getattr(obj, "priority", None))


class ZendeskDesk:
    """`bot.desk.Desk` over the Zendesk API."""

    def __init__(self, subdomain: str, email: str, token: str, timeout: float = 10.0,
                 gate=None, record=None):
        """`record(outcome)`, when given, is told of every HTTP call: `ok`,
        `rate_limited` or `error` (see `bot.metrics.api_request`); `gate`
        (`bot.ratelimit.ZendeskGate`) sees every answer and may hold a call back."""
        self.subdomain = subdomain
        self.gate = gate
        self.record = record or (lambda outcome: None)
        session = requests.Session()
        session.hooks["response"].append(self._count)
        if gate is not None:
            session.hooks["response"].append(self._observe)
        session.hooks["response"].append(_raise_for_status)
        self.client = Zenpy(subdomain=subdomain, email=email, token=token, session=session,
                            timeout=timeout, disable_cache=True)
        self.session, self.timeout = session, timeout  # authorised by zenpy

    def _observe(self, response: requests.Response, *args, **kwargs) -> None:
        if response.status_code == 429:
            self.gate.pause(retry_after(response))
        self.gate.observe(response.headers)

    def _count(self, response: requests.Response, *args, **kwargs) -> None:
        self.record(api_outcome(response.status_code))

    def _do(self, fn, *args, write: bool = False, **kwargs):
        """Run one zenpy call, mapping network failures to TransientError."""
        if self.gate:
            self.gate.take()
        try:
            return fn(*args, **kwargs)
        except requests.ConnectionError as exc:
            self.record("error")  # no answer at all: the response hook never ran
            if isinstance(exc, requests.ConnectTimeout):
                raise TransientError("zendesk unreachable") from exc
            raise TransientError("zendesk connection failed", unknown_outcome=write) from exc
        except requests.Timeout as exc:
            self.record("error")
            raise TransientError("zendesk timed out", unknown_outcome=write) from exc

    def find_user_by_phone(self, phone: str) -> int | None:
        # Zendesk search wants the number without '+'. It lags creation by
        # minutes, so callers look in Hotline's own map first.
        user = self._do(lambda: next(iter(self.client.search(type="user", phone=phone.lstrip("+"))),
                                     None))
        return int(user.id) if user else None

    def find_user_by_email(self, email: str) -> int | None:
        user = self._do(lambda: next(iter(self.client.search(type="user", email=email)), None))
        return int(user.id) if user else None

    def create_user(self, name: str, phone: str | None = None, email: str | None = None) -> int:
        """Create the requester, idempotently: Zendesk's create-or-update matches the email,
        or the external id Hotline gives a number (its fingerprint), so a create whose answer
        was lost and is tried again finds the user it made instead of making a second one
        (search would not see it yet: it lags creation by minutes)."""
        fields = {"name": name, "role": "end-user"}
        if phone:
            fields.update(phone=phone, external_id=f"hotline-phone-{fingerprint(phone)}")
        if email:
            fields["email"] = email
        if not (phone or email):  # nothing to match on (a withheld number): a new user each time
            return int(self._do(self.client.users.create, User(**fields), write=True).id)
        user = self._do(self.client.users.create_or_update, User(**fields), write=True)
        return int(user.id)

    def get_ticket(self, ticket_id: int) -> Ticket | None:
        try:
            return _ticket(self._do(self.client.tickets, id=ticket_id))
        except NotFound:
            return None

    def ticket_for_followup(self, ticket_id: int) -> Ticket | None:
        # zenpy drops sideloads without its cache; the same authorised session
        # reads the ticket with its users sideloaded (one request, as get_ticket).
        url = f"https://{self.subdomain}.zendesk.com/api/v2/tickets/{ticket_id}.json"
        try:
            data = self._do(lambda: self.session.get(url, params={"include": "users"},
                                                     timeout=self.timeout).json())
        except NotFound:
            return None
        t = data["ticket"]
        zone = next((u.get("iana_time_zone") for u in data.get("users") or []
                     if u.get("id") == t.get("requester_id")), None)
        return Ticket(id=int(t["id"]), status=str(t["status"]), requester_id=t.get("requester_id"),
                      updated_at=str(t.get("updated_at") or ""), tags=list(t.get("tags") or []),
                      priority=t.get("priority"), requester_time_zone=zone)

    def find_ticket_by_external_id(self, external_id: str) -> Ticket | None:
        found = self._do(lambda: list(self.client.tickets(external_id=external_id)))
        return _ticket(found[0]) if found else None

    def create_ticket(self, ticket: NewTicket) -> Ticket:
        fields = dict(
            requester_id=ticket.requester_id,
            submitter_id=ticket.requester_id,
            subject=ticket.subject,
            comment=self._comment(ticket.comment),
            tags=ticket.tags,
        )
        if ticket.external_id:
            fields["external_id"] = ticket.external_id
        if ticket.followup_of:
            fields["via_followup_source_id"] = ticket.followup_of
        if ticket.priority:
            fields["priority"] = ticket.priority
        if ticket.group_id:
            fields["group_id"] = ticket.group_id
        if ticket.custom_fields:
            fields["custom_fields"] = [{"id": k, "value": v} for k, v in ticket.custom_fields.items()]
        if tracing.current():
            fields["metadata"] = {"hotline_event": tracing.current()}
        audit = self._do(self.client.tickets.create, ZTicket(**fields), write=True)
        return _ticket(audit.ticket)

    def add_comment(self, ticket_id: int, comment: NewComment, *, status: str | None = None,
                    updated_stamp: str | None = None, batch_id: str | None = None,
                    add_tags: list[str] | None = None,
                    remove_tags: list[str] | None = None,
                    priority: str | None = None) -> Ticket:
        fields = dict(id=ticket_id, comment=self._comment(comment))
        if priority:
            fields["priority"] = priority
        if add_tags:
            fields["additional_tags"] = add_tags
        if remove_tags:
            fields["remove_tags"] = remove_tags
        if status:
            fields["status"] = status
        if updated_stamp:
            fields["safe_update"] = True
            fields["updated_stamp"] = updated_stamp
        # The audit's metadata says which batch (unknown-outcome checks) and which
        # event (the logs' `event_id`) this write was for.
        metadata = {"hotline_batch": batch_id, "hotline_event": tracing.current()}
        if any(metadata.values()):
            fields["metadata"] = {k: v for k, v in metadata.items() if v}
        audit = self._do(self.client.tickets.update, ZTicket(**fields), write=True)
        return _ticket(audit.ticket)

    def batch_written(self, ticket_id: int, batch_id: str) -> bool:
        audits = self._do(lambda: list(self.client.tickets.audits(ticket=ticket_id)))
        for audit in audits:
            metadata = getattr(audit, "metadata", None)
            custom = (metadata.get("custom") if isinstance(metadata, dict)
                      else getattr(metadata, "custom", None)) or {}
            if isinstance(custom, dict) and custom.get("hotline_batch") == batch_id:
                return True
        return False

    def comments(self, ticket_id: int) -> list[DeskComment]:
        found = self._do(lambda: list(self.client.tickets.comments(ticket=ticket_id)))
        out = []
        for c in found:
            attachments = [Attachment(name=getattr(a, "file_name", "") or "attachment",
                                      url=getattr(a, "content_url", "") or "",
                                      content_type=getattr(a, "content_type", "") or "")
                           for a in (getattr(c, "attachments", None) or [])]
            out.append(DeskComment(id=int(c.id), author_id=getattr(c, "author_id", None),
                                   public=bool(getattr(c, "public", False)),
                                   body=getattr(c, "plain_body", None) or getattr(c, "body", "") or "",
                                   created_at=str(getattr(c, "created_at", "") or ""),
                                   attachments=attachments))
        return out

    def user_roles(self, user_ids: list[int]) -> dict[int, str]:
        if not user_ids:
            return {}
        users = self._do(lambda: list(self.client.users(ids=list(user_ids))))
        return {int(u.id): str(u.role) for u in users}

    def count_requested(self, user_id: int) -> int:
        # The list endpoint, not search: it does not lag, and its `count` is the total.
        return self._do(lambda: len(self.client.users.requested(user_id)))

    def ticket_url(self, ticket_id: int) -> str:
        return f"https://{self.subdomain}.zendesk.com/agent/tickets/{ticket_id}"

    def me(self) -> int:
        return int(self._do(self.client.users.me).id)

    def api_user(self) -> dict:
        """The API user's id (None: Zendesk took the call as anonymous) and role."""
        user = self._do(self.client.users.me)
        return {"id": getattr(user, "id", None), "role": getattr(user, "role", None)}

    def upload(self, filename: str, content: bytes, content_type: str) -> str:
        upload = self._do(self.client.attachments.upload, io.BytesIO(content),
                          target_name=filename, content_type=content_type, write=True)
        return upload.token

    @staticmethod
    def _comment(comment: NewComment) -> Comment:
        fields = dict(body=comment.body, public=comment.public)
        if comment.author_id:
            fields["author_id"] = comment.author_id
        if comment.uploads:
            fields["uploads"] = comment.uploads
        return Comment(**fields)
