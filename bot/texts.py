"""Every text Hotline sends on its own, chosen here: what, to whom, once for which intent.

Agents' replies and macro texts are the agents' words (`bot.agent_replies`);
everything else a customer or the on-call team receives from Hotline — the
acknowledgement or after-hours reply, the emergency advice, the HELP answer,
the missed-call text, the on-call alert — is chosen by a function below and
sent by `send`, which returns what was said so it can be put on the ticket
(SPEC 6; issue 10: the agent sees what the customer was told).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from jinja2 import UndefinedError

from bot import delivery, followups, keys
from bot.delivery import Sent
from bot.phones import fingerprint
from bot.triage import Decision


@dataclass(frozen=True)
class Text:
    template: str        # e.g. "sms/ack"
    intent: str          # once-only key in the conversation's outbox
    what: str            # how notes name it


# The auto-reply mark of a conversation acknowledged before its ticket existed, and how
# long it stands when no auto-reply window is set (the ticket is opened within seconds).
BEFORE_TICKET = "before-ticket"
BEFORE_TICKET_HOLD = 10 * 60


def _window(rt) -> int:
    return max(0, int(rt.settings.autoreply_window_hours * 3600))


def _acknowledgement(rt, now: datetime | None) -> str:
    """The plain acknowledgement, or the after-hours message outside business hours."""
    return "ack" if rt.settings.in_business_hours(now or datetime.now(timezone.utc)) else "after_hours"


def autoreply(rt, conv_id: str, ticket_id: int, decision: Decision,
              now: datetime | None = None) -> Text | None:
    """The reply to a new ticket's first message, at most one per conversation per window.

    The category's own template (emergency…) goes whatever the hour and the
    window; the plain acknowledgement becomes the after-hours message outside
    business hours, and is not sent again when `first_reply` sent it before
    the ticket existed.
    """
    window, key = _window(rt), keys.autoreply(conv_id)
    if decision.template != "ack":
        rt.redis.set(key, ticket_id, ex=max(1, window))
        return Text(f"sms/{decision.template}", f"auto:{ticket_id}", f"the automatic reply ({decision.template})")
    if (rt.redis.get(key) or b"").decode() == BEFORE_TICKET:
        return None  # acknowledged before its ticket existed
    if window and not rt.redis.set(key, ticket_id, nx=True, ex=window):
        if (rt.redis.get(key) or b"").decode() != str(ticket_id):
            return None  # answered recently on another ticket, or just before this one existed
    template = _acknowledgement(rt, now)
    return Text(f"sms/{template}", f"auto:{ticket_id}", f"the automatic reply ({template})")


def first_reply(rt, conv_id: str, decision: Decision, language: str, event_id: str,
                now: datetime | None = None) -> Text | None:
    """A new conversation's acknowledgement before its ticket exists (SPEC 12: the first
    reply leaves ≤ 3 s after the text, whatever Zendesk's pace), or None when the reply
    must wait for the ticket: the emergency advice (it names the case, and the on-call
    alert goes with it), and any template an operator made name the case number
    (`{{ ticket_id }}`). At most one auto-reply per conversation per window, as `autoreply`.
    """
    if decision.template != "ack":
        return None
    template = _acknowledgement(rt, now)
    try:
        rt.templates.render(f"sms/{template}", language)
    except UndefinedError:
        return None  # it names the ticket: `autoreply` sends it once the ticket exists
    window = _window(rt)
    if not rt.redis.set(keys.autoreply(conv_id), BEFORE_TICKET, nx=True, ex=window or BEFORE_TICKET_HOLD):
        return None
    return Text(f"sms/{template}", f"auto:first:{event_id}", f"the automatic reply ({template})")


def emergency(ticket_id: int, decision: Decision) -> Text:
    """The emergency advice when a later message on a ticket turns out to be one."""
    return Text(f"sms/{decision.template}", f"emergency:{ticket_id}", "the emergency advice")


def help_reply(provider_id: str) -> Text:
    return Text("sms/help", f"help:{provider_id}", "the HELP answer")


def missed_call(call_sid: str) -> Text:
    return Text("sms/missed_call", f"missed:{call_sid}", "the missed-call text")


FOLLOWUP_TEMPLATES = {followups.REMINDER: "sms/reminder", followups.LAST_NOTICE: "sms/last_notice",
                      followups.SATISFACTION: "sms/satisfaction"}


def followup(ticket_id: int, step: str, reason: str) -> Text:
    """A follow-up's text to the customer (SPEC 7), once per ticket, step and reason."""
    return Text(FOLLOWUP_TEMPLATES[step], f"fu:{ticket_id}:{step}:{reason}",
                f"the {step.replace('_', ' ')} text")


def survey_thanks(ticket_id: int) -> Text:
    """The thanks for an answer to the satisfaction survey (SPEC 7)."""
    return Text("sms/satisfaction_thanks", f"csat:{ticket_id}", "the thanks for the survey answer")


def send(rt, conv_id: str, ticket_id: int | None, text: Text) -> tuple[Sent, str]:
    """Text the conversation's customer `text`, once; returns the outcome and the words."""
    conv = keys.conversation(conv_id)
    phone = (rt.redis.hget(conv, "phone") or b"").decode()
    language = (rt.redis.hget(conv, "language") or b"en").decode()
    # Before its ticket exists a text has no case number to name (`first_reply`).
    body = rt.templates.render(text.template, language,
                               **({} if ticket_id is None else {"ticket_id": ticket_id}))
    if not phone:
        return Sent.NO_PHONE, body
    return delivery.send_text(rt, conv_id=conv_id, ticket_id=ticket_id, phone=phone, body=body,
                              intent=text.intent, what=text.what), body


def alert(rt, ticket_id: int, decision: Decision, reason: str) -> None:
    """Text each on-call number the ticket link (once per ticket, reason and number)."""
    body = rt.templates.render("sms/oncall", ticket_id=ticket_id, url=rt.desk.ticket_url(ticket_id),
                               why=decision.why, category=decision.category)
    _page_on_call(rt, ticket_id, body, f"oncall:{ticket_id}:{reason}", "the on-call alert")


def overdue(rt, ticket_id: int, reason: str, page: int, waited: str) -> None:
    """Text each on-call number the overdue ticket's link (no customer data), once per page."""
    body = rt.templates.render("sms/oncall_overdue", ticket_id=ticket_id,
                               url=rt.desk.ticket_url(ticket_id), waited=waited)
    since = reason.partition(":")[0]
    _page_on_call(rt, ticket_id, body, f"overdue:{ticket_id}:{since}:{page}",
                  "the on-call page for an unanswered ticket")


def _page_on_call(rt, ticket_id: int, body: str, intent: str, what: str) -> None:
    for number in rt.settings.on_call:
        delivery.send_text(rt, conv_id=delivery.ONCALL, ticket_id=ticket_id, phone=number, body=body,
                           intent=f"{intent}:{fingerprint(number)}", what=what)


def told(sent: list[tuple[Text, str]]) -> str:
    """What the agent reads about the texts Hotline sent the customer."""
    return "\n\n".join(f"Hotline texted the customer {t.what}:\n{body}" for t, body in sent)
