"""Agents' public replies in Zendesk reaching the customer by SMS (SPEC 6).

The webhook is only a hint. `sync` reads the ticket's comments and sends each
public comment by an agent that has not been sent yet, oldest first, so a
missed webhook loses nothing (the next one catches up) and a repeated one
sends nothing new. Comments by the requester, by Hotline's own API user,
private notes, and anything from before Hotline linked the ticket are never
sent: no loops, no echoes.

Macros: a ticket tag `hotline_send_<template>` sends `templates/sms/<template>`
to the requester, notes it on the ticket and removes the tag.
"""
from __future__ import annotations

import logging
import re
from datetime import datetime, timezone

from bot import followup_steps, keys, tickets
from bot.conversations import Lock
from bot.delivery import Sent, note, send_text
from bot.errors import Throttled
from bot.replies import TemplateProblem

log = logging.getLogger("hotline.agent_replies")

SMS_MAX = 1600
MACRO_PREFIX = "hotline_send_"
AGENT_ROLES = {"agent", "admin"}
ROLE_TTL = 24 * 3600


class Busy(Throttled):
    """Another worker is syncing this ticket; try again shortly (not a failure)."""

    def __init__(self):
        super().__init__("another worker is syncing this ticket", retry_after=2)


def split_sms(text: str, limit: int = SMS_MAX) -> list[str]:
    """Split a long reply at paragraph, sentence or word boundaries into numbered parts."""
    text = text.strip()
    if len(text) <= limit:
        return [text]
    room = limit - len("(99/99) ")
    pieces = [p for p in re.split(r"(?<=\n)\n+|(?<=[.!?])\s+|\s+", text) if p]
    parts, current = [], ""
    for piece in pieces:
        while len(piece) > room:  # a single word longer than a message
            if current:
                parts.append(current)
                current = ""
            parts.append(piece[:room])
            piece = piece[room:]
        joined = f"{current} {piece}" if current else piece
        if len(joined) > room:
            parts.append(current)
            current = piece
        else:
            current = joined
    if current:
        parts.append(current)
    return [f"({i}/{len(parts)}) {p}" for i, p in enumerate(parts, 1)]


def _when(stamp: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _before(created_at: str, linked_at: str) -> bool:
    """Whether a comment predates Hotline's link to the ticket."""
    created, linked = _when(created_at or ""), _when(linked_at or "")
    return bool(created and linked and created < linked)


def _me(rt) -> int:
    cached = rt.redis.get(keys.PREFIX + "desk-me")
    if cached:
        return int(cached)
    me = rt.desk.me()
    rt.redis.set(keys.PREFIX + "desk-me", me, ex=ROLE_TTL)
    return me


def _roles(rt, user_ids: set[int]) -> dict[int, str]:
    ids = sorted(u for u in user_ids if u)
    roles = {}
    if ids:
        for uid, role in zip(ids, rt.redis.mget([keys.PREFIX + f"role:{u}" for u in ids])):
            if role:
                roles[uid] = role.decode()
    missing = [u for u in ids if u not in roles]
    if missing:
        fetched = rt.desk.user_roles(missing)
        for uid, role in fetched.items():
            rt.redis.set(keys.PREFIX + f"role:{uid}", role, ex=ROLE_TTL)
        roles.update(fetched)
    return roles


def sync(rt, ticket_id: int) -> int:
    """Send what the customer has not yet received from this ticket; returns texts sent."""
    link = {k.decode(): v.decode() for k, v in rt.redis.hgetall(keys.ticket(ticket_id)).items()}
    if not link.get("conv"):
        return 0  # not a text conversation Hotline knows
    lock = Lock(rt.redis, keys.ticket_lock(ticket_id))
    if not lock.acquire():
        raise Busy()
    with lock.held():
        return _sync(rt, ticket_id, link["conv"], link.get("linked_at", ""))


def _sync(rt, ticket_id: int, conv_id: str, linked_at: str) -> int:
    conn = rt.redis
    phone = (conn.hget(keys.conversation(conv_id), "phone") or b"").decode()
    if not phone.startswith("+"):
        # An email conversation: Zendesk mails agents' replies itself; Hotline
        # only learns whether an agent answered (the first-response watch).
        _answers(rt, ticket_id, conv_id, [c for c in rt.desk.comments(ticket_id) if c.public])
        return 0
    ticket = rt.desk.get_ticket(ticket_id)
    if ticket is None:
        return 0
    tickets.observe(conn, ticket.id, ticket.status, ticket.updated_at)
    # What the agent changed (priority, status) is now known: raises are judged
    # against it, and the customer's next text can still go as one safe update.
    tickets.seen(conn, ticket)
    sent = _macros(rt, ticket, conv_id, phone)

    # Comment ids only grow: everything up to `replied_upto` has been handled
    # (kept on the ticket's own hash, which does not expire).
    upto = int(conn.hget(keys.ticket(ticket_id), "replied_upto") or 0)
    comments = [c for c in rt.desk.comments(ticket_id)
                if c.public and c.id > upto and c.author_id
                and c.author_id != ticket.requester_id and not _before(c.created_at, linked_at)]
    if not comments:
        return sent
    me = _me(rt)
    comments = [c for c in comments if c.author_id != me]
    roles = _roles(rt, {c.author_id for c in comments})
    followup_steps.agent_answered(rt, ticket_id, [c.created_at for c in comments
                                                  if roles.get(c.author_id) in AGENT_ROLES])
    for c in sorted(comments, key=lambda c: c.id):
        if roles.get(c.author_id) not in AGENT_ROLES:
            _handled(conn, ticket_id, c.id)  # a CC'd end-user, not an agent: never texted
            continue
        body = c.body.strip()
        for a in c.attachments:
            body += f"\n{a.name}: {a.url}"
        outcome = None
        for i, part in enumerate(split_sms(body), 1):
            outcome = send_text(rt, conv_id=conv_id, ticket_id=ticket_id, phone=phone, body=part,
                                intent=f"comment:{c.id}:{i}", what="the agent's reply")
            if outcome == Sent.SENT:
                sent += 1
            elif outcome != Sent.ALREADY:
                break
        if outcome == Sent.OPTED_OUT:
            note(rt, ticket_id, "This reply was not sent by text: the customer has opted out "
                                "(STOP). Reach them another way, or ask them to text START.")
        _handled(conn, ticket_id, c.id)
    return sent


_RAISE = """
local current = tonumber(redis.call('HGET', KEYS[1], 'replied_upto') or '0')
if tonumber(ARGV[1]) > current then redis.call('HSET', KEYS[1], 'replied_upto', ARGV[1]) end
return 1
"""


def _handled(conn, ticket_id: int, comment_id: int) -> None:
    conn.eval(_RAISE, 1, keys.ticket(ticket_id), comment_id)


def _answers(rt, ticket_id: int, conv_id: str, public) -> None:
    """Record the newest public answer by an agent among `public` comments."""
    requester = (rt.redis.hget(keys.conversation(conv_id), "user_id") or b"").decode()
    me = _me(rt)
    others = [c for c in public if c.author_id and c.author_id != me and str(c.author_id) != requester]
    roles = _roles(rt, {c.author_id for c in others})
    followup_steps.agent_answered(rt, ticket_id, [c.created_at for c in others
                                                  if roles.get(c.author_id) in AGENT_ROLES])


def _macros(rt, ticket, conv_id: str, phone: str) -> int:
    sent = 0
    for tag in [t for t in ticket.tags if t.startswith(MACRO_PREFIX)]:
        name = tag[len(MACRO_PREFIX):]
        if not re.fullmatch(r"[a-z0-9_]+", name):
            continue
        intent = f"macro:{ticket.id}:{tag}"
        try:
            body = rt.templates.render(f"sms/{name}", ticket_id=ticket.id)
        except TemplateProblem:
            note(rt, ticket.id, f"Tag {tag}: there is no text template sms/{name}; nothing was "
                                f"sent.", remove_tags=[tag])
            continue
        outcome = send_text(rt, conv_id=conv_id, ticket_id=ticket.id, phone=phone, body=body,
                            intent=intent, what=f"the {name} text")
        if outcome == Sent.SENT:
            sent += 1
        if outcome in (Sent.SENT, Sent.ALREADY):
            note(rt, ticket.id, f"Hotline sent the {name} text to the customer:\n\n{body}",
                 remove_tags=[tag])
        elif outcome == Sent.OPTED_OUT:
            note(rt, ticket.id, f"The {name} text was not sent: the customer has opted out (STOP).",
                 remove_tags=[tag])
        else:
            note(rt, ticket.id, f"Tag {tag} removed; the {name} text was not sent (see the "
                                f"note above).", remove_tags=[tag])
        rt.redis.hdel(keys.outbox(conv_id), intent)  # the same macro may be used again later
    return sent
