"""What Hotline knows of a ticket it writes to: its safe-update stamp, status and priority.

The one place they are written. The stamp and status live on the conversation
(the next text goes as one safe update while nobody else touched the ticket);
the priority lives on the ticket's own hash (raises are judged against it).
Whoever reads or writes a ticket — the conversation's write, Hotline's own
notes, the agent-reply sync — reports what the desk answered here.
"""
from __future__ import annotations

from bot import keys
from bot.desk import Ticket


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
