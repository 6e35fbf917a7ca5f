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

from bot import delivery, followups, keys
from bot.delivery import Sent
from bot.phones import fingerprint
from bot.triage import Decision


@dataclass(frozen=True)
class Text:
    template: str        # e.g. "sms/ack"
    intent: str          # once-only key in the conversation's outbox
    what: str            # how notes name it


def autoreply(rt, conv_id: str, ticket_id: int, decision: Decision,
              now: datetime | None = None) -> Text | None:
    """The reply to a new ticket's first message, at most one per conversation per window.

    The category's own template (emergency…) goes whatever the hour and the
    window; the plain acknowledgement becomes the after-hours message outside
    business hours.
    """
    window = max(0, int(rt.settings.autoreply_window_hours * 3600))
    if decision.template != "ack":
        rt.redis.set(keys.autoreply(conv_id), ticket_id, ex=max(1, window))
        return Text(f"sms/{decision.template}", f"auto:{ticket_id}", f"the automatic reply ({decision.template})")
    if window and not rt.redis.set(keys.autoreply(conv_id), ticket_id, nx=True, ex=window):
        if (rt.redis.get(keys.autoreply(conv_id)) or b"").decode() != str(ticket_id):
            return None  # answered recently on another ticket
    now = now or datetime.now(timezone.utc)
    template = "ack" if rt.settings.in_business_hours(now) else "after_hours"
    return Text(f"sms/{template}", f"auto:{ticket_id}", f"the automatic reply ({template})")


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
        delivery.send_text(rt, conv_id="oncall", ticket_id=ticket_id, phone=number, body=body,
                           intent=f"{intent}:{fingerprint(number)}", what=what)


def told(sent: list[tuple[Text, str]]) -> str:
    """What the agent reads about the texts Hotline sent the customer."""
    return "\n\n".join(f"Hotline texted the customer {t.what}:\n{body}" for t, body in sent)
