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


# A conversation's auto-reply mark, `<owner>|<template>|<intent>`: which ticket the last
# automatic reply was for (or BEFORE_TICKET: a new conversation's, sent before its ticket
# existed) and what it was. It lives `autoreply_window_hours` (at most one auto-reply per
# conversation per window), and a day at least once an early reply is in it, so that the
# new ticket finds its reply and a retry never sends another.
BEFORE_TICKET = "before-ticket"
BEFORE_TICKET_HOLD = 24 * 3600


def _window(rt) -> int:
    return max(0, int(rt.settings.autoreply_window_hours * 3600))


def _acknowledgement(rt, now: datetime | None) -> str:
    """The plain acknowledgement, or the after-hours message outside business hours."""
    return "ack" if rt.settings.in_business_hours(now or datetime.now(timezone.utc)) else "after_hours"


def _auto(template: str, intent: str) -> Text:
    return Text(template, intent, f"the automatic reply ({template.rsplit('/', 1)[-1]})")


def _mark(rt, conv_id: str) -> tuple[str, Text] | None:
    raw = (rt.redis.get(keys.autoreply(conv_id)) or b"").decode()
    parts = raw.split("|")
    return (parts[0], _auto(parts[1], parts[2])) if len(parts) == 3 else None


def _set_mark(rt, conv_id: str, owner, text: Text, ttl: int, **options) -> bool:
    return bool(rt.redis.set(keys.autoreply(conv_id), f"{owner}|{text.template}|{text.intent}",
                             ex=ttl, **options))


def autoreply(rt, conv_id: str, ticket_id: int, decision: Decision,
              now: datetime | None = None) -> list[Text]:
    """The replies to a new ticket's first message: at most one acknowledgement per
    conversation per window, and the category's own template (emergency…) whatever the
    hour and the window.

    The acknowledgement `first_reply` chose before the ticket existed is this ticket's
    (sent again only if it never left: the outbox knows); the plain acknowledgement
    becomes the after-hours message outside business hours.
    """
    window = _window(rt)
    held = _mark(rt, conv_id)
    early = None
    if held and held[0] == BEFORE_TICKET:
        early = held[1]
        _set_mark(rt, conv_id, ticket_id, early, max(window, BEFORE_TICKET_HOLD))
    elif held and held[0] == str(ticket_id) and before_ticket(held[1]):
        early = held[1]  # this ticket's, found by an earlier try of its after_write
    if decision.template != "ack":
        text = _auto(f"sms/{decision.template}", f"auto:{ticket_id}")
        # The mark keeps the early acknowledgement, if any, so a retry still reports it.
        _set_mark(rt, conv_id, ticket_id, early or text, max(window, BEFORE_TICKET_HOLD))
        return [t for t in (early, text) if t]
    if early:
        return [early]
    if held and held[0] == str(ticket_id):
        return [held[1]]  # an earlier try of this ticket's after_write chose it
    text = _auto(f"sms/{_acknowledgement(rt, now)}", f"auto:{ticket_id}")
    if window and not _set_mark(rt, conv_id, ticket_id, text, window, nx=True):
        return []  # answered recently, on another ticket
    if not window:
        _set_mark(rt, conv_id, ticket_id, text, BEFORE_TICKET_HOLD)
    return [text]


def before_ticket(text: Text) -> bool:
    """Whether `text` is a first reply sent before its ticket existed (`first_reply`)."""
    return text.intent.startswith("auto:first:")


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
    template = f"sms/{_acknowledgement(rt, now)}"
    try:
        rt.templates.render(template, language)
    except UndefinedError:
        return None  # it names the ticket: `autoreply` sends it once the ticket exists
    text = _auto(template, f"auto:first:{event_id}")
    # It stands until the ticket adopts it, a day at least (Zendesk may be down for hours).
    if not _set_mark(rt, conv_id, BEFORE_TICKET, text, max(_window(rt), BEFORE_TICKET_HOLD), nx=True):
        held = _mark(rt, conv_id)
        if not held or held[1] != text:
            return None  # answered lately
    return text


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
    body = rt.templates.render(text.template, language, ticket_id=ticket_id)
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
