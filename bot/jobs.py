"""RQ jobs: importable functions that take ids, re-read state, and retry transient failures.

Arguments are opaque ids only: no phone number, address or text is ever in a
job's arguments (they show in RQ's dashboards and logs).
"""
from __future__ import annotations

import logging
import time
from datetime import timedelta

from rq import Queue, Retry

from bot import conversations, keys, runtime
from bot.desk import NewComment
from bot.errors import PermanentError, TransientError
from bot.phones import mask

log = logging.getLogger("hotline.jobs")

# Seconds between attempts after a transient failure; then the sweep in the
# web tier keeps offering the conversation about once a minute, so an outage
# of any length loses nothing.
BACKOFF = (2, 5, 15, 30, 60, 120, 300, 600)


def _queue(rt) -> Queue:
    return Queue(rt.config.queue_name, connection=rt.redis)


def process_conversation(conv_id: str, attempt: int = 0) -> int:
    """Write a conversation's pending events to the desk (see `bot.conversations`)."""
    rt = runtime.get()
    try:
        return conversations.process(rt, conv_id)
    except TransientError as exc:
        if attempt >= len(BACKOFF):
            raise
        delay = exc.retry_after if exc.retry_after is not None else BACKOFF[attempt]
        _queue(rt).enqueue_in(timedelta(seconds=delay), process_conversation, conv_id, attempt + 1,
                              description=f"process_conversation({conv_id})")
        # Keep the sweep from offering it again before then.
        rt.redis.zadd(keys.PENDING_INDEX, {conv_id: int((time.time() + delay) * 1000)}, xx=True)
        log.warning("conversation.retry", extra={"conv": conv_id, "attempt": attempt + 1,
                                                 "delay": delay, "error": str(exc)})
        return 0


def schedule_autoreply(rt, conv_id: str, ticket_id: int) -> bool:
    """Queue the auto-reply for a new ticket, at most one per conversation per window."""
    window = int(rt.settings.autoreply_window_hours * 3600)
    if window and not rt.redis.set(keys.autoreply(conv_id), ticket_id, nx=True, ex=window):
        return False
    from datetime import datetime, timezone

    template = "sms/ack" if rt.settings.in_business_hours(datetime.now(timezone.utc)) \
        else "sms/after_hours"
    _queue(rt).enqueue(send_template, conv_id, ticket_id, template,
                       retry=Retry(max=5, interval=[5, 15, 60, 300, 900]),
                       description=f"send_template({conv_id}, {template})")
    return True


def send_template(conv_id: str, ticket_id: int, template: str) -> str | None:
    """Text the conversation's customer the template; a permanent failure is noted on the ticket."""
    rt = runtime.get()
    phone = rt.redis.hget(keys.conversation(conv_id), "phone")
    if not phone:
        log.error("send.no-phone", extra={"conv": conv_id})
        return None
    phone = phone.decode()
    body = rt.templates.render(template, ticket_id=ticket_id)
    try:
        sid = rt.phone.send_sms(phone, body)
    except TransientError as exc:
        if exc.unknown_outcome:
            # It may have gone out; a second copy to someone in crisis is worse.
            log.error("send.outcome-unknown", extra={"conv": conv_id, "to": mask(phone)})
            _note(rt, ticket_id, f"Hotline may not have sent the automatic reply "
                                 f"({template}): the carrier did not answer in time.")
            return None
        raise
    except PermanentError as exc:
        log.error("send.failed", extra={"conv": conv_id, "to": mask(phone), "code": exc.code})
        _note(rt, ticket_id, f"Hotline could not send the automatic reply ({template}) "
                             f"to the customer: {exc}.")
        return None
    log.info("send.sent", extra={"conv": conv_id, "to": mask(phone), "template": template})
    return sid


def _note(rt, ticket_id: int, text: str) -> None:
    rt.desk.add_comment(ticket_id, NewComment(body=text, public=False))
