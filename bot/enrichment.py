"""What the agent sees at a glance, and who is alerted (SPEC 5, issue 4).

On a new ticket: an internal note saying who, where, which channel and
language, how many earlier tickets, opt-out state, and the triage decision
with the rule that made it. A later message may raise the priority (never
lower it), with a note saying why. An emergency texts the on-call numbers
the ticket link, and the customer the emergency template.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass

from bot import delivery, keys, keywords, reconcile, texts
from bot.delivery import Sent
from bot.desk import NewComment
from bot.language import NAMES
from bot.phones import display
from bot.triage import Decision, rank

log = logging.getLogger("hotline.enrichment")


def decide(rt, messages) -> Decision:
    """The batch's decision: its most urgent message's (the first, among equals).

    A caller who pressed 1 on the voice menu chose emergency themselves.
    """
    triage = rt.settings.triage
    decisions = []
    for m in messages:
        if m.triage_hint == "emergency":
            chosen = triage.decision_for("emergency", None, None)
            chosen.rule, chosen.matched = "voice menu", "1 (emergency)"
            decisions.append(chosen)
        else:
            words = f"{m.subject}\n{m.body}" if m.kind_of == "email" else m.body
            decisions.append(triage.decide(words if m.kind_of in ("text", "transcription", "email")
                                           else ""))
    return max(decisions, key=lambda d: rank(d.priority))


def facts(decision: Decision) -> dict:
    """A decision as plain data for a job's arguments (rule words, no customer text)."""
    return asdict(decision)


def where(location: dict) -> str:
    parts = [p.title() if p.isupper() and len(p) > 2 else p
             for p in (location.get("city"), location.get("state"), location.get("country")) if p]
    return ", ".join(parts)


def summary(*, decision: Decision, phone: str, location: dict, language: str | None,
            earlier: int | None, opted_out: bool, channel: str = "SMS") -> str:
    """The note an agent reads first on a new ticket."""
    lines = [
        f"Hotline triage: {decision.category.upper()} — priority {decision.priority}",
        f"Why: {decision.why}",
        f"Who: {display(phone)} · earlier tickets: "
        + ("unknown" if earlier is None else str(earlier))
        + " · texts: " + ("OPTED OUT (STOP)" if opted_out else "allowed"),
        f"Where: {where(location) or 'unknown'} (carrier's location of the number)",
        f"Channel: {channel} · language: " + (NAMES.get(language, language) if language else "not detected"),
    ]
    return "\n".join(lines)


def earlier_tickets(rt, conv: dict, user_id: int, created_user: bool) -> int | None:
    """Tickets the requester had before this one (no API call when Hotline made the user)."""
    if created_user:
        return max(0, int(conv.get("tickets_opened") or 1) - 1)  # this one is counted
    try:
        return max(0, rt.desk.count_requested(user_id) - 1)
    except Exception:  # enrichment must never block the customer's message
        log.warning("enrichment.count-failed", extra={"user": user_id})
        return None


@dataclass(frozen=True)
class Recording:
    """A voicemail's audio to attach to its ticket (a job of its own: Twilio may not have it yet)."""

    ticket_id: int
    recording: dict


def has_followups(facts: dict) -> bool:
    """Whether a written batch calls for a follow-up job: since follow-ups (SPEC 7) watch
    every customer text, every write does; a keyword-only batch may not."""
    decision = facts.get("decision") or {"category": "", "priority": "low"}
    previous = facts.get("previous")
    return bool(facts["created"] or decision["category"] == "emergency"
                or (previous and rank(decision["priority"]) > rank(previous))
                or facts.get("keywords") or facts.get("missed_calls") or facts.get("recordings")
                or facts.get("recovered") or facts.get("survey_answered")
                or facts.get("received_at"))  # the follow-ups (SPEC 7) watch every customer text


def followups(rt, conv_id: str, ticket_id: int | None, facts: dict) -> list[Recording]:
    """Everything a written batch calls for besides the write itself, each step once:
    the on-call alert, the texts to the customer, then one note — the summary on
    a new ticket, else the priority raise or what Hotline texted — saying what
    the customer was told. Returns the recordings still to attach.

    Runs as its own job (`bot.jobs.after_write`, on the urgent queue for an
    emergency) and is retried as a whole: a step that succeeded is not repeated.
    """
    if ticket_id is None:  # keywords from a number with no ticket: the answers, no note
        for text in keywords.replies(facts.get("keywords") or []):
            texts.send(rt, conv_id, None, text)
        return []
    if facts.get("survey_answered"):  # recorded by `bot.followup_steps`: only the thanks
        texts.send(rt, conv_id, ticket_id, texts.survey_thanks(ticket_id))
        return []
    decision = Decision(**facts["decision"])
    created, previous = facts["created"], facts.get("previous")
    conv = {k.decode(): v.decode() for k, v in rt.redis.hgetall(keys.conversation(conv_id)).items()}
    phone = conv.get("phone", "")
    step = f"{ticket_id}:{facts['batch']}"
    urgent_now = created or rank(decision.priority) > rank(previous or "low")
    if decision.category == "emergency" and urgent_now:
        # First: a person must hear of an emergency even if Zendesk keeps failing below.
        texts.alert(rt, ticket_id, decision, facts["batch"])

    # The customer first, notes after.
    chosen: list[texts.Text] = []
    if created and facts.get("channel") != "email" and not facts.get("missed_calls") \
            and not facts.get("answered_call"):
        chosen += texts.autoreply(rt, conv_id, ticket_id, decision)
    elif decision.category == "emergency" and urgent_now and not created:
        chosen.append(texts.emergency(ticket_id, decision))
    chosen += [texts.missed_call(sid) for sid in facts.get("missed_calls") or []]
    chosen += keywords.replies(facts.get("keywords") or [])
    told, problems = [], []
    for text in chosen:
        outcome, body = texts.send(rt, conv_id, ticket_id, text)
        problem = delivery.earlier_problem(rt, conv_id, text.intent, text.what) \
            if outcome == Sent.ALREADY else None
        if problem is None and outcome in (Sent.SENT, Sent.ALREADY):
            told.append((text, body))
        elif problem and texts.before_ticket(text):
            problems.append(problem)  # it failed with no ticket to note it on: noted here
    said = "\n\n".join(filter(None, [texts.told(told)] + problems))

    if created:
        def summary_note():
            location = json.loads(conv.get("location") or "{}")
            delivery.note(rt, ticket_id, "\n\n".join(filter(None, [summary(
                decision=decision, phone=phone, location=location, language=facts.get("language"),
                earlier=earlier_tickets(rt, conv, facts["user_id"], facts["created_user"]),
                opted_out=delivery.is_opted_out(rt.redis, phone),
                channel=facts.get("channel", "SMS")), said])))
        delivery.once(rt, f"summary:{ticket_id}", summary_note)
    elif previous and rank(decision.priority) > rank(previous):
        delivery.once(rt, f"raised:{step}", lambda: delivery.note(
            rt, ticket_id, "\n\n".join(filter(None, [
                f"Hotline raised the priority from {previous} to {decision.priority}: "
                f"{decision.why} in the customer's latest message.", said])),
            priority=None if facts.get("raised_in_write") else decision.priority))
    elif said:
        delivery.once(rt, f"told:{step}", lambda: delivery.note(rt, ticket_id, said))
    keywords.apply(rt, ticket_id, facts.get("keywords") or [])
    if created and phone and delivery.is_opted_out(rt.redis, phone):
        # Opted out before this ticket existed (STOP earlier, or Twilio refusing the first reply).
        delivery.note_opt_out(rt, ticket_id, "the number is opted out")
    for recovered in facts.get("recovered") or []:
        reconcile.mark_ticket(rt, ticket_id, recovered)
    if created and facts.get("channel") == "email" and rt.settings.email_acknowledge:
        # Zendesk usually acknowledges email itself; Hotline only when asked to, as a
        # public comment that Zendesk mails to the requester.
        delivery.once(rt, f"autoreply:{ticket_id}", lambda: rt.desk.add_comment(
            ticket_id, NewComment(body=rt.templates.render(
                "email/ack", facts.get("language") or "en", ticket_id=ticket_id), public=True)))
    return [Recording(ticket_id, r) for r in facts.get("recordings") or []]
