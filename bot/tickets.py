"""What Hotline knows of a ticket it writes to: its safe-update stamp, status and priority.

The one place they are written. The stamp and status live on the conversation
(the next text goes as one safe update while nobody else touched the ticket);
the priority lives on the ticket's own hash (raises are judged against it), and
so do the status and since when it holds, which the follow-ups read (`observe`).
Whoever reads or writes a ticket — the conversation's write, Hotline's own
notes, the agent-reply sync — reports what the desk answered here.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone

from bot import keys
from bot.desk import Ticket

# KEYS: ticket hash. ARGV: status, its time (epoch), priority or "".
_OBSERVE = """
if redis.call('HGET', KEYS[1], 'status') ~= ARGV[1] then
  redis.call('HSET', KEYS[1], 'status', ARGV[1], 'status_since', ARGV[2])
end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'priority', ARGV[3]) end
return 1
"""


def epoch(stamp: str) -> float | None:
    """A desk time stamp ("2026-05-01T10:00:00Z") in epoch seconds; None when unreadable."""
    try:
        when = datetime.fromisoformat((stamp or "").replace("Z", "+00:00"))
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


def is_linked(conn, ticket_id) -> bool:
    """Whether a ticket belongs to a conversation Hotline writes to."""
    return bool(conn.exists(keys.ticket(ticket_id)))


def remember(conn, ticket: Ticket, conv_id: str, *, priority: str | None = None) -> None:
    """The conversation's current ticket, as the desk just returned it (`conn` may be a pipeline)."""
    conn.hset(keys.conversation(conv_id), mapping={"ticket_stamp": ticket.updated_at,
                                                   "ticket_status": ticket.status})
    if priority:
        conn.hset(keys.ticket(ticket.id), "priority", priority)


def seen(conn, ticket: Ticket) -> None:
    """A ticket as the desk reported it after any other read or write.

    Its stamp is kept only while it is still its conversation's current
    ticket, so Hotline's own write never makes the customer's next text look
    like a conflict.
    """
    conv = conn.hget(keys.ticket(ticket.id), "conv")
    current = conv and (conn.hget(keys.conversation(conv.decode()), "ticket_id") or b"").decode() \
        == str(ticket.id)
    if current:
        remember(conn, ticket, conv.decode(), priority=ticket.priority)
    elif ticket.priority:
        conn.hset(keys.ticket(ticket.id), "priority", ticket.priority)


def observe(conn, ticket_id: int, status: str, updated_at: str, priority: str | None = None) -> None:
    """The ticket's status (and since when, on a change) and priority as the desk just reported them."""
    since = epoch(updated_at) or time.time()
    conn.eval(_OBSERVE, 1, keys.ticket(ticket_id), status, int(since), priority or "")
