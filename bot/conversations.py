"""Which requester, which ticket, and writing a conversation's messages to it (SPEC 4).

A conversation's pending events (see `bot.intake`) are taken by whichever
worker holds the conversation's lock, oldest first, and written as one
comment per batch: a burst of texts costs one or two ticket writes and never
opens two tickets. The lock is short and renewed by a heartbeat while its
holder lives, so a killed worker holds its conversation for seconds, not
minutes. Nothing here waits on a clock: `process` says when a burst should
be looked at again (`Later`) and what was written (`Written`), and
`bot.jobs` turns those into jobs. Hotline's own map (Redis) is trusted over Zendesk search,
which lags creation by minutes.

Every write to Zendesk is preceded by an intent in the conversation map; if
the outcome of a write is unknown (timeout), the next attempt asks Zendesk
whether it happened (ticket external id, audit metadata) instead of writing
again.
"""
from __future__ import annotations

import json
import logging
import mimetypes
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import redis

from bot import (enrichment, followup_steps, keys, keywords, metrics, reconcile, texts, tickets,
                 tracing)
from bot.desk import NewComment, NewTicket, Ticket
from bot.errors import NotFound, PermanentError, TicketClosed, TransientError, UpdateConflict
from bot.events import InboundMessage
from bot.language import detect
from bot.phones import display, mask
from bot.triage import rank

log = logging.getLogger("hotline.conversations")

BATCH_MAX = 50
LOCK_TTL_MS = 10_000        # renewed every third of it while the holder lives
OPEN_STATUSES = {"new", "open", "pending", "hold"}
REOPEN_STATUSES = {"pending", "solved"}
REFERENCE = re.compile(r"(?:#\s?|\b(?:ticket|case|caso)\s*(?:no\.?|number|n[úu]mero)?\s*#?\s*)(\d{2,12})\b",
                       re.IGNORECASE)

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
# Drop the conversation from the pending index only if nothing is pending.
_SETTLE = """
if redis.call('ZCARD', KEYS[1]) == 0 then redis.call('ZREM', KEYS[2], ARGV[1]) return 1 end
return 0
"""


class Lock:
    """A per-conversation lock with an owner token, so only its holder frees it."""

    def __init__(self, conn: redis.Redis, key: str):
        self.conn, self.key, self.token = conn, key, uuid.uuid4().hex

    def acquire(self) -> bool:
        return bool(self.conn.set(self.key, self.token, nx=True, px=LOCK_TTL_MS))

    def extend(self) -> bool:
        """Renew the lock; False when it expired and someone else holds it now."""
        return bool(self.conn.eval(_EXTEND, 1, self.key, self.token, LOCK_TTL_MS))

    def release(self) -> None:
        self.conn.eval(_RELEASE, 1, self.key, self.token)

    @contextmanager
    def held(self):
        """Keep the (acquired) lock while the block runs — a heartbeat thread renews
        it — and release it after. A killed process stops renewing: the lock
        expires within LOCK_TTL_MS."""
        stop = threading.Event()

        def beat():
            while not stop.wait(LOCK_TTL_MS / 3000):
                if not self.extend():
                    return

        thread = threading.Thread(target=beat, name="hotline-lock-heartbeat", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()
            self.release()


@dataclass
class Pending:
    member: bytes
    message: InboundMessage


@dataclass
class Result:
    ticket: Ticket
    created: bool


@dataclass(frozen=True)
class Written:
    """A batch reached its ticket; `facts` say what the follow-ups are (`bot.enrichment`)."""

    conv_id: str
    ticket_id: int | None      # None: keywords from a number with no ticket
    facts: dict = field(default_factory=dict)

    @property
    def urgent(self) -> bool:
        """Whether what follows goes on the urgent queue: an emergency's alert and advice."""
        return (self.facts.get("decision") or {}).get("category") == "emergency"

    @property
    def replies(self) -> bool:
        """Whether what follows goes on the replies queue: a new ticket's, whose customer may
        still wait for the first reply (one that names the case, SPEC 12's 3 s)."""
        return bool(self.facts.get("created")) and not self.urgent


@dataclass(frozen=True)
class Later:
    """A burst is still arriving: look at the conversation again in `seconds`."""

    seconds: float


def _s(value) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")


def load_pending(conn: redis.Redis, conv_id: str) -> list[Pending]:
    raw = conn.zrange(keys.pending(conv_id), 0, BATCH_MAX - 1)
    return [Pending(m, InboundMessage.from_dict(json.loads(m))) for m in raw]


def quiet_in(rt, conv_id: str, *, written: bool = False, now: float | None = None) -> float:
    """Seconds until a burst in progress has gone quiet; 0 to write now.

    A burst is texts arriving while others wait or were just written: two or
    more waiting (one, once this job has `written` a batch), the newest
    younger than `coalesce_quiet_ms`. It is never held longer than
    `coalesce_max_ms` after its oldest waiting text. A lone text is written at once.
    """
    quiet = rt.settings.coalesce_quiet_ms / 1000
    if quiet <= 0:
        return 0.0
    pipe = rt.redis.pipeline(transaction=False)
    pipe.zcard(keys.pending(conv_id))
    pipe.zrange(keys.pending(conv_id), 0, 0, withscores=True)
    pipe.zrange(keys.pending(conv_id), -1, -1, withscores=True)
    count, oldest, newest = pipe.execute()
    if count < (1 if written else 2):
        return 0.0
    now = time.time() if now is None else now
    wait = newest[0][1] / 1000 + quiet - now
    cap = oldest[0][1] / 1000 + rt.settings.coalesce_max_ms / 1000 - now
    return max(0.0, min(wait, cap))


def process(rt, conv_id: str, *, urgent: bool = False) -> Iterator[Written | Later]:
    """Bring conversation `conv_id` up to date in the desk, yielding each `Written`
    batch — and, when a burst is still arriving, a last `Later` saying when to
    look again instead of waiting for it. An `urgent` conversation's first
    batch is written at once, burst or not.

    Safe to run in any number of workers at once: the one holding the lock
    works; the others stop, and the holder looks again after letting go, so
    no event is left behind.
    """
    written = False
    while True:
        lock = Lock(rt.redis, keys.lock(conv_id))
        if not lock.acquire():
            return
        with lock.held():
            while True:
                wait = quiet_in(rt, conv_id, written=written) if written or not urgent else 0.0
                if wait > 0:
                    yield Later(wait)
                    return
                batch = load_pending(rt.redis, conv_id)
                if not batch:
                    break
                try:
                    yield write_batch(rt, conv_id, batch, lock)
                    written = True
                except PermanentError as exc:
                    set_aside(rt, conv_id, batch, exc)
        if rt.redis.eval(_SETTLE, 2, keys.pending(conv_id), keys.PENDING_INDEX, conv_id):
            return


def set_aside(rt, conv_id: str, batch: list[Pending], exc: PermanentError) -> None:
    """A batch the desk refuses for good: keep it, tell the agent, let the rest go on.

    The events move to the conversation's dead-letter set, from which
    `flask hotline failed requeue` puts them back.
    """
    conn = rt.redis
    pipe = conn.pipeline(transaction=True)
    for p in batch:
        pipe.zadd(keys.dead(conv_id), {p.member: p.message.received_at * 1000})
    pipe.zrem(keys.pending(conv_id), *[p.member for p in batch])
    pipe.sadd(keys.DEAD_INDEX, conv_id)
    pipe.execute()
    log.error("conversation.set-aside", extra={"conv": conv_id, "events": len(batch),
                                               "error": type(exc).__name__, "status": exc.status})
    ticket_id = _s(conn.hget(keys.conversation(conv_id), "ticket_id"))
    if ticket_id:
        note = (f"Hotline could not add {len(batch)} message(s) from the customer to this ticket: "
                f"{exc}. They are kept; an operator can replay them with "
                f"`flask hotline failed requeue`.")
        try:
            rt.desk.add_comment(int(ticket_id), NewComment(body=note, public=False))
        except (PermanentError, TransientError):
            log.error("conversation.note-failed", extra={"conv": conv_id})


# -- requester ---------------------------------------------------------------

def resolve_requester(rt, conv_id: str, phone: str, conv: dict, name: str = "") -> tuple[int, bool]:
    """The requester's desk user id — Hotline's map, then desk search, else a new
    user — and whether Hotline created that user."""
    if conv.get("user_id"):
        return int(conv["user_id"]), conv.get("user_created") == "1"
    if phone.startswith("anon:"):  # a caller who withheld their number: no lookup possible
        user_id, created = rt.desk.create_user("Caller (number withheld)"), True
    elif "@" in phone:  # an email conversation: the address is the contact
        user_id, created = rt.desk.find_user_by_email(phone), False
        if user_id is None:
            user_id, created = rt.desk.create_user(name or phone, email=phone), True
    else:
        user_id, created = rt.desk.find_user_by_phone(phone), False
        if user_id is None:
            user_id, created = rt.desk.create_user(display(phone), phone), True
        log.info("conversation.user-created", extra={"phone": mask(phone), "user_id": user_id})
    rt.redis.hset(keys.conversation(conv_id), mapping={"user_id": user_id,
                                                       "user_created": int(created)})
    return user_id, created


# -- ticket ------------------------------------------------------------------

def _updated_at(ticket: Ticket) -> datetime | None:
    try:
        return datetime.fromisoformat(ticket.updated_at.replace("Z", "+00:00"))
    except ValueError:
        return None


def usable(ticket: Ticket, reopen_window_hours: float, now: datetime) -> bool:
    """Whether a new message may go on `ticket` (solved ones only inside the window).

    Zendesk gives no solved time on the ticket itself; its last update is
    used, which for a solved ticket is when it was solved unless it was
    touched since.
    """
    if ticket.status in OPEN_STATUSES:
        return True
    if ticket.status == "solved":
        updated = _updated_at(ticket)
        return updated is not None and now - updated <= timedelta(hours=reopen_window_hours)
    return False


def referenced_ticket(rt, texts: list[str], user_id: int) -> Ticket | None:
    """A ticket the customer names (`#1234`, `ticket 1234`) that is theirs."""
    for text in texts:
        for match in REFERENCE.finditer(text or ""):
            ticket = rt.desk.get_ticket(int(match.group(1)))
            if ticket and ticket.requester_id == user_id:
                return ticket
    return None


def compose(rt, messages: list[InboundMessage]) -> str:
    """One comment for a batch: the text itself, or each text with its time."""
    if len(messages) == 1:
        return messages[0].body or "(empty message)"
    tz = rt.settings.timezone
    lines = []
    for m in messages:
        at = datetime.fromtimestamp(m.received_at, tz).strftime("%H:%M:%S %Z")
        lines.append(f"[{at}] {m.body or '(empty message)'}")
    return "\n".join(lines)


def attach_media(rt, messages: list[InboundMessage]) -> tuple[list[str], list[str]]:
    """Download, check and upload each MMS medium; returns (tokens, notes for the comment)."""
    tokens, notes = [], []
    allowed = rt.settings.media_allowed_types
    for m in messages:
        for i, media in enumerate(m.media):
            cache_key = keys.intent(f"upload:{m.provider_id}:{i}")
            cached = rt.redis.get(cache_key)
            if cached:
                tokens.append(_s(cached))
                continue
            declared = (media.content_type or "").lower()
            if allowed and declared and declared not in allowed and not media.url.startswith("blob:"):
                notes.append(f"(attachment {i + 1} not kept: type {declared} is not accepted)")
                continue
            if media.url.startswith("blob:"):  # an email attachment, kept in Redis
                content = rt.redis.get(keys.blob(media.url[5:]))
                if content is None:
                    notes.append(f"(attachment {media.filename or i + 1} expired before it "
                                 f"could be kept)")
                    continue
                name = media.filename or f"{m.provider_id}-{i + 1}"
                token = rt.desk.upload(name, content, media.content_type or "application/octet-stream")
                rt.redis.set(cache_key, token, ex=30 * 60)
                tokens.append(token)
                continue
            try:
                file = rt.phone.fetch_media(media.url, rt.settings.media_max_bytes)
            except PermanentError as exc:
                notes.append(f"(attachment {i + 1} not kept: {exc})")
                continue
            if allowed and file.content_type not in allowed:
                notes.append(f"(attachment {i + 1} not kept: type {file.content_type} is not accepted)")
                continue
            ext = mimetypes.guess_extension(file.content_type) or ".bin"
            token = rt.desk.upload(f"{m.provider_id}-{i + 1}{ext}", file.content, file.content_type)
            # Zendesk keeps an unused upload token for a while; a retry reuses it.
            rt.redis.set(cache_key, token, ex=30 * 60)
            tokens.append(token)
    return tokens, notes


SUBJECTS = {"text": "Text message", "voicemail": "Voicemail", "transcription": "Voicemail",
            "missed_call": "Missed call", "answered_call": "Call"}


def _new_ticket(rt, user_id: int, messages: list[InboundMessage], comment: NewComment,
                batch_id: str, followup_of: int | None, with_media: bool, decision,
                language) -> NewTicket:
    first = messages[0]
    where = enrichment.where(first.location or {})
    tags = ["hotline", first.channel] + (["mms"] if with_media and first.channel == "sms" else []) + decision.tags \
        + ([f"lang_{language}"] if language else []) \
        + sorted({m.kind_of for m in messages if m.kind_of not in ("text", "email")})
    fields = {}
    if rt.settings.location_field_id and where:
        fields[rt.settings.location_field_id] = where
    what = SUBJECTS.get(first.kind_of, "Text message")
    subject = first.subject or (f"{what} from {where}" if where else what)
    tags += [t for m in messages for t in m.tags if t not in tags]
    return NewTicket(requester_id=user_id, subject=subject, comment=comment, tags=tags,
                     external_id=f"hotline-{batch_id}", followup_of=followup_of,
                     custom_fields=fields, priority=decision.priority, group_id=decision.group_id)


def deliver(rt, conv: dict, user_id: int, texts: list[str], comment: NewComment,
            new_ticket, batch_id: str, record, raise_for=lambda ticket_id: None) -> Result:
    """Put `comment` on the right ticket, opening one if needed (SPEC 4 order).

    `record(kind, ticket_id)` is called before each write, so an unknown
    outcome can be checked later; `new_ticket(followup_of)` builds the ticket.
    """
    desk = rt.desk

    def create(followup_of):
        record("create", None)
        return Result(desk.create_ticket(new_ticket(followup_of)), True)

    def update(ticket_id, **kw):
        record("update", ticket_id)
        return Result(desk.add_comment(ticket_id, comment, batch_id=batch_id,
                                       priority=raise_for(ticket_id),
                                       **kw), False)

    now = datetime.now(timezone.utc)
    current = int(conv["ticket_id"]) if conv.get("ticket_id") else None
    named = referenced_ticket(rt, texts, user_id)
    target = named.id if named else current

    # Fast path: nobody touched the ticket since Hotline last wrote it, so it
    # is still open — one safe update, no read.
    stamp = conv.get("ticket_stamp")
    if target and target == current and stamp and conv.get("ticket_status") in OPEN_STATUSES:
        try:
            return update(target, updated_stamp=stamp,
                          status="open" if conv.get("ticket_status") == "pending" else None)
        except UpdateConflict:
            pass
        except TicketClosed:
            return create(target)
        except NotFound:  # deleted in Zendesk: the conversation starts afresh
            return create(None)

    ticket = named or (desk.get_ticket(target) if target else None)
    if ticket and usable(ticket, rt.settings.reopen_window_hours, now):
        status = "open" if ticket.status in REOPEN_STATUSES else None
        try:
            return update(ticket.id, status=status)
        except TicketClosed:
            ticket.status = "closed"
        except NotFound:
            return create(None)
    return create(ticket.id if ticket and ticket.status == "closed" else None)


def _thread_ticket(conn, thread_ids: list[str], conv_id: str) -> str:
    """The ticket of the newest earlier email of this sender that this one answers."""
    for mid in reversed(thread_ids or []):
        ticket, _, owner = _s(conn.hget(keys.MESSAGE_IDS, mid)).partition(":")
        if ticket and owner == conv_id:
            return ticket
    return ""


def _settled_before(rt, intent: dict | None, batch_ids: list[str]) -> Ticket | None:
    """After a write whose outcome was unknown: did it happen? Returns its ticket."""
    if not intent or intent["events"] != batch_ids:
        return None
    if intent["kind"] == "create":
        return rt.desk.find_ticket_by_external_id(f"hotline-{intent['batch']}")
    if rt.desk.batch_written(intent["ticket"], intent["batch"]):
        return rt.desk.get_ticket(intent["ticket"])
    return None


def _has_current_ticket(conv: dict) -> bool:
    return bool(conv.get("ticket_id")) and conv.get("ticket_status") != "closed"


def _keywords_without_ticket(rt, conv_id: str, batch: list[Pending], phone: str) -> Written:
    """STOP/START/HELP from a number with no current ticket: recorded and answered, no ticket
    (as Zendesk's own text channel does): a keyword is not a case for an agent. The
    answer (HELP) is a follow-up of a `Written` without a ticket."""
    found = keywords.flag(rt, phone, [p.message for p in batch])
    pipe = rt.redis.pipeline(transaction=True)
    pipe.zrem(keys.pending(conv_id), *[p.member for p in batch])
    for p in batch:
        pipe.set(keys.seen(p.message.dedupe_key), "done", xx=True, keepttl=True)
    pipe.execute()
    log.info("conversation.keywords-only", extra={"conv": conv_id, "keywords": [k for k, *_ in found]})
    return Written(conv_id, None, {"created": False, "keywords": found, "events": len(batch)})


@dataclass(frozen=True)
class FirstReply:
    """What `first_reply` did (for the log), and whether the write that follows is urgent."""

    outcome: str
    urgent: bool = False


def first_reply(rt, conv_id: str) -> FirstReply:
    """Acknowledge a new conversation now, before its ticket exists (its job, queued on the
    replies queue by `bot.intake`, then hands the write on): the customer's first reply
    does not wait for three Zendesk calls and the other conversations' writes. Best
    effort: whatever this does not send, the new ticket's `after_write` sends
    (`texts.autoreply` finds the choice in the auto-reply mark), and its summary note says
    what the customer was told or why it failed.

    An emergency only the model saw (the web tier looks at the rules alone) is not
    acknowledged here: its advice names the case; its write goes on the urgent queue.
    """
    conn = rt.redis
    conv = {_s(k): _s(v) for k, v in conn.hgetall(keys.conversation(conv_id)).items()}
    if _has_current_ticket(conv):
        return FirstReply("has a ticket")
    messages = [p.message for p in load_pending(conn, conv_id)]
    if not messages or any(m.channel != "sms" or m.kind_of != "text" for m in messages) \
            or any(keywords.keyword(m) for m in messages):
        return FirstReply("left to the ticket")  # a call, STOP/START/HELP: answered with the write
    if any(REFERENCE.search(m.body or "") for m in messages):
        return FirstReply("names a ticket")  # it may belong to an existing ticket: answered with it
    decision = enrichment.decide(rt, messages)
    if decision.category == "emergency":
        return FirstReply("an emergency: written from the urgent queue", urgent=True)
    words = " ".join(m.body or "" for m in messages).strip()
    language = conv.get("language") or (detect(words, rt.settings.languages) if words else None)
    text = texts.first_reply(rt, conv_id, decision, language or "en", messages[0].event_id)
    if text is None:
        return FirstReply("waits for the ticket")
    pipe = conn.pipeline(transaction=True)
    pipe.hsetnx(keys.conversation(conv_id), "phone", messages[0].sender)
    if language:
        pipe.hsetnx(keys.conversation(conv_id), "language", language)
    pipe.execute()
    return FirstReply(texts.send(rt, conv_id, None, text)[0].value)


class LockLost(TransientError):
    """The conversation's lock expired during slow calls; another worker took over."""


def answered_survey(rt, conv_id: str, pending: Pending, ticket_id: int) -> Written:
    """A survey answer is recorded on its ticket (`bot.followup_steps`), not written as a
    message: settle the event; the thanks is its follow-up."""
    metrics.followup(rt.redis, "satisfaction", "answered")
    pipe = rt.redis.pipeline(transaction=True)
    pipe.zrem(keys.pending(conv_id), pending.member)
    pipe.set(keys.seen(pending.message.dedupe_key), "done", xx=True, keepttl=True)
    pipe.execute()
    return Written(conv_id, ticket_id, {"created": False, "survey_answered": True, "events": 1})


def write_batch(rt, conv_id: str, batch: list[Pending], lock: Lock | None = None) -> Written:
    """Write one batch of a conversation's events to the desk; says what follows.

    With `lock`, the lock is renewed right before the write, and the write is
    not made if the lock was lost meanwhile (slow media, slow Zendesk).
    """
    conn = rt.redis
    conv_map = keys.conversation(conv_id)
    conv = {_s(k): _s(v) for k, v in conn.hgetall(conv_map).items()}
    intent = json.loads(conv.get("intent") or "null")
    if intent:
        # A write of exactly these events may have happened: settle them alone.
        batch = [p for p in batch if p.message.event_id in set(intent["events"])] or batch
    if batch[0].message.channel == "email":
        batch = batch[:1]  # each email is its own comment, threaded on its own
    messages = [p.message for p in batch]
    first = messages[0]
    phone = first.sender
    rated = None if intent else followup_steps.survey_answer(rt, conv_id, first)
    if rated is not None:
        return answered_survey(rt, conv_id, batch[0], rated)
    if not conv.get("phone"):
        conn.hset(conv_map, "phone", phone)
    if not intent and not _has_current_ticket(conv) and keywords.only_keywords(messages):
        return _keywords_without_ticket(rt, conv_id, batch, phone)
    user_id, created_user = resolve_requester(rt, conv_id, phone, conv, first.sender_name)
    batch_ids = [m.event_id for m in messages]
    batch_id = first.event_id
    tracing.set_event(batch_id)  # the desk write, its log lines and the jobs it queues

    decision = enrichment.decide(rt, messages)
    words = " ".join(m.body or "" for m in messages if m.kind_of in ("text", "transcription", "email"))
    language = conv.get("language") or (detect(words, rt.settings.languages) if words else None)
    if language and not conv.get("language"):
        conn.hset(conv_map, "language", language)
    # Priority is the ticket's own, as Zendesk last reported it to Hotline (after
    # each write and each sync): a raise is judged against that, so neither an
    # agent's change nor another thread of the same customer is overridden.
    known: dict = {}

    def raise_for(ticket_id):
        current = _s(conn.hget(keys.ticket(ticket_id), "priority")) or None
        known["previous"] = current
        raised = decision.priority if current and rank(decision.priority) > rank(current) else None
        known["raised"] = bool(raised)
        return raised
    found_keywords = keywords.flag(rt, phone, messages)

    prior = _settled_before(rt, intent, batch_ids)
    if prior:
        result = Result(prior, intent["kind"] == "create")
        log.info("conversation.write-confirmed", extra={"conv": conv_id, "ticket": prior.id})
    else:
        tokens, notes = attach_media(rt, messages)
        body = compose(rt, messages)
        if notes:
            body += "\n\n" + "\n".join(notes)
        comment = NewComment(body=body, author_id=user_id, public=True, uploads=tokens)

        def new_ticket(followup_of):
            return _new_ticket(rt, user_id, messages, comment, batch_id, followup_of,
                               any(m.media for m in messages), decision, language)

        def record(kind, ticket_id):
            conn.hset(conv_map, "intent", json.dumps(
                {"kind": kind, "batch": batch_id, "events": batch_ids, "ticket": ticket_id}))

        if lock is not None and not lock.extend():
            raise LockLost("conversation lock lost before the write")
        texts = [m.body for m in messages]
        view = conv
        if first.channel == "email":
            # Email threads by subject reference or by the headers, never by "the
            # conversation's current ticket": a fresh email is a fresh ticket.
            texts = [first.subject]
            threaded = _thread_ticket(conn, first.thread_ids, conv_id)
            view = dict(conv, ticket_id=threaded or "",
                        ticket_stamp=conv.get("ticket_stamp") if threaded == conv.get("ticket_id") else "")
        try:
            result = deliver(rt, view, user_id, texts, comment,
                             new_ticket, batch_id, record, raise_for)
        except TransientError as exc:
            if not exc.unknown_outcome:
                conn.hdel(conv_map, "intent")
            raise
        except PermanentError:
            conn.hdel(conv_map, "intent")
            raise

    pipe = conn.pipeline(transaction=True)
    pipe.hset(conv_map, "ticket_id", result.ticket.id)
    tickets.remember(pipe, result.ticket, conv_id,
                     priority=result.ticket.priority or known.get("previous") or decision.priority)
    pipe.hdel(conv_map, "intent")
    pipe.hsetnx(keys.ticket(result.ticket.id), "conv", conv_id)
    # Agent replies older than the link are not for this conversation; on a
    # ticket Hotline opened, every reply is. (The desk's own clock, not ours.)
    pipe.hsetnx(keys.ticket(result.ticket.id), "linked_at",
                "" if result.created else result.ticket.updated_at)
    pipe.zrem(keys.pending(conv_id), *[p.member for p in batch])
    for m in messages:
        pipe.set(keys.seen(m.dedupe_key), "done", xx=True, keepttl=True)
    for m in messages:
        if m.message_id:  # only this sender's replies may thread onto this ticket
            pipe.hset(keys.MESSAGE_IDS, m.message_id, f"{result.ticket.id}:{conv_id}")
    if result.created:
        pipe.hincrby(conv_map, "tickets_opened", 1)
        pipe.hset(conv_map, "location", json.dumps(first.location or {}))
    pipe.execute()
    metrics.inbound_to_desk(conn, [time.time() - m.received_at for m in messages])
    log.info("conversation.written", extra={
        "conv": conv_id, "ticket": result.ticket.id, "events": len(batch),
        "event_ids": batch_ids, "new_ticket": result.created, "from": mask(phone)})
    return Written(conv_id, result.ticket.id, {
        "batch": batch_id, "created": result.created, "created_user": created_user,
        "user_id": user_id, "language": language,
        # What the ticket's priority was before this batch: Hotline's record when it
        # raised it in the write itself, else what Zendesk returned from the write
        # (an agent may have lowered it meanwhile; the follow-up job raises it then).
        "previous": known.get("previous") if known.get("raised") else
        (None if result.created else result.ticket.priority or known.get("previous")),
        "raised_in_write": bool(known.get("raised")),
        "decision": enrichment.facts(decision), "keywords": found_keywords,
        "channel": {"sms": "SMS", "voice": "phone call", "email": "email"}[first.channel],
        "missed_calls": [m.provider_id.split(":")[0] for m in messages if m.kind_of == "missed_call"],
        "recordings": [m.recording for m in messages if m.recording],
        "answered_call": any(m.kind_of == "answered_call" for m in messages),
        "recovered": [f for f in map(reconcile.fact, messages) if f],
        # For the follow-ups: when the customer's words arrived, and the ticket as written.
        "received_at": first.received_at, "status": result.ticket.status,
        "updated_at": result.ticket.updated_at, "events": len(batch)})
