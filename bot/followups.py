"""Follow-ups that keep a case moving (SPEC 7): what to do, decided from plain facts.

Nothing here reads Redis, Zendesk or a clock. `plan` says which steps a ticket
should have scheduled, given what Hotline knows of it; `decide` says what a
step that has come due does, given the ticket as just re-read. The shell
(`bot.followup_steps`) gathers the facts and carries the answer out; the jobs
(`bot.jobs`) schedule and cancel in RQ.

Each step has a *reason*, a string that names the occasion it is about: the
time the customer's first unanswered message arrived (first-response watch and
re-pages), the moment the ticket became pending (reminder, last notice) or
solved (survey). A step runs at most once per ticket, step and reason, and
does nothing when its reason is gone.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_timezones

from bot.settings import PRIORITIES, Settings

FIRST_RESPONSE, REPAGE = "first_response", "repage"
REMINDER, LAST_NOTICE, SATISFACTION = "reminder", "last_notice", "satisfaction"
CUSTOMER_STEPS = (REMINDER, LAST_NOTICE, SATISFACTION)  # each texts the customer (`bot.texts`)
OVERDUE_TAG = "hotline_overdue"
MAX_PAGES = 3
WAITING_STATUSES = {"new", "open"}      # the customer waits for an agent
OPEN_STATUSES = {"new", "open", "pending", "hold"}


@dataclass(frozen=True)
class Schedule:
    """Run `step` for `reason` at `due` (epoch seconds); on the urgent queue when `urgent`."""

    step: str
    reason: str
    due: float
    urgent: bool = False


@dataclass(frozen=True)
class TicketState:
    """What Hotline knows of a ticket between reads (its own records in Redis)."""

    status: str = ""
    status_since: float | None = None
    priority: str | None = None
    waiting_since: float | None = None    # the customer's first message no agent answered
    answered_at: float | None = None      # the newest public answer by an agent
    texts: bool = False                   # an SMS conversation: Hotline may text the customer
    done: frozenset[str] = frozenset()    # "step:reason" already carried out
    scheduled: dict[str, tuple[str, float]] = field(default_factory=dict)  # step -> (reason, due)

    @property
    def waiting(self) -> bool:
        return bool(self.waiting_since and self.status in WAITING_STATUSES
                    and (self.answered_at or 0) < self.waiting_since)


def reason_of(when: float) -> str:
    return str(int(when))


def first_response_limit(priority: str | None, settings: Settings) -> float:
    """Seconds an agent has for a first public answer at this priority."""
    return settings.followups.first_response_minutes[priority or "normal"] * 60


def plan(t: TicketState, settings: Settings) -> tuple[list[Schedule], list[str]]:
    """Steps to (re)schedule and steps whose scheduled job is moot now.

    Idempotent: planning twice from the same state asks for nothing new, so it
    can run after every write and every webhook hint.
    """
    want: list[Schedule] = []
    keep: set[str] = set()
    f = settings.followups

    def ask(step: str, reason: str, due: float, urgent: bool = t.priority == "urgent") -> None:
        keep.add(step)
        if f"{step}:{reason}" in t.done:
            return
        have_reason, have_due = t.scheduled.get(step, (None, None))
        # Already scheduled for this reason: leave it (a step held for quiet hours
        # keeps its later time); only a raised priority brings a watch forward.
        if have_reason == reason and (step != FIRST_RESPONSE or have_due <= due):
            return
        want.append(Schedule(step, reason, due, urgent))

    if t.waiting:
        reason = reason_of(t.waiting_since)
        if f"{FIRST_RESPONSE}:{reason}" in t.done:
            keep.add(REPAGE)  # the escalation schedules its own re-pages
        else:
            ask(FIRST_RESPONSE, reason, t.waiting_since + first_response_limit(t.priority, settings))
    if t.texts and t.status == "pending" and t.status_since:
        reason = reason_of(t.status_since)
        first, second = (t.status_since + h * 3600 for h in f.pending_reminder_hours)
        if f"{REMINDER}:{reason}" not in t.done:
            ask(REMINDER, reason, first)
        else:
            ask(LAST_NOTICE, reason, second)
    if t.texts and t.status == "solved" and t.status_since and f.satisfaction_after_hours:
        reason = reason_of(t.status_since)
        ask(SATISFACTION, reason, t.status_since + f.satisfaction_after_hours * 3600, urgent=False)
    cancel = [step for step in t.scheduled if step not in keep]
    return want, cancel


# -- a step that has come due ------------------------------------------------

@dataclass(frozen=True)
class Facts:
    """A ticket as a due step sees it: just re-read from the desk, with Hotline's records."""

    state: TicketState
    zone: ZoneInfo
    opted_out: bool = False
    other_emergency: bool = False     # another ticket of this customer is an open emergency
    surveyed_recently: bool = False   # this customer got a survey inside the window


@dataclass(frozen=True)
class Action:
    """What a due step does. `outcome` names it (logs, metrics); the rest is what to carry out."""

    outcome: str                       # done | gone | waiting | held | skipped | opted_out
    retry_at: float | None = None      # not yet: run again then (same reason)
    note: str | None = None
    tags: tuple[str, ...] = ()
    priority: str | None = None        # raise to this
    page: int | None = None            # text on-call this overdue page (1..MAX_PAGES)
    text_customer: bool = False        # text the customer the step's text (`bot.texts.followup`)
    then: Schedule | None = None


def minutes(seconds: float) -> str:
    """A wait in words: '7 minutes', '3 h 05 min', '2 days 4 h'."""
    m = max(0, int(seconds // 60))
    if m < 1:
        return "under a minute"
    if m < 60:
        return f"{m} minute{'s' if m != 1 else ''}"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h} h {m:02d} min"
    d, h = divmod(h, 24)
    return f"{d} days {h} h"


def raised(priority: str | None) -> str:
    """One step up, never down; urgent stays urgent."""
    i = PRIORITIES.index(priority or "normal")
    return PRIORITIES[min(i + 1, len(PRIORITIES) - 1)]


def decide(step: str, reason: str, facts: Facts, now: float, settings: Settings,
           early: bool = False) -> Action:
    """What `step` for `reason` does at `now`. `early`: as if it were due (local mode's "run now")."""
    t = facts.state
    if step in (FIRST_RESPONSE, REPAGE):
        return _watch(step, reason, t, now, settings, early)
    if step not in CUSTOMER_STEPS:
        return Action("gone")
    wanted = "solved" if step == SATISFACTION else "pending"
    if not t.texts or t.status != wanted or not t.status_since or reason_of(t.status_since) != reason:
        return Action("gone")  # replied, changed status, or another occasion since
    if step == SATISFACTION and not settings.followups.satisfaction_after_hours:
        return Action("gone")
    if facts.opted_out:
        return Action("opted_out")
    if step == SATISFACTION and (facts.other_emergency or facts.surveyed_recently):
        return Action("skipped")
    # A survey is never urgent; a reminder about an urgent case goes whatever the hour.
    if (step == SATISFACTION or t.priority != "urgent") and not early:
        until = quiet_until(now, facts.zone, settings.quiet_hours)
        if until:
            return Action("held", retry_at=until)
    then = None
    if step == REMINDER:
        due = t.status_since + settings.followups.pending_reminder_hours[1] * 3600
        then = Schedule(LAST_NOTICE, reason, due, t.priority == "urgent")
    what = {REMINDER: "a reminder", LAST_NOTICE: "the last notice"}.get(step)
    note = (f"Hotline texted the customer {what} (waiting for them since "
            f"{minutes(now - t.status_since)} ago).") if what else None
    return Action("done", text_customer=True, note=note, then=then)


def _watch(step, reason, t: TicketState, now, settings, early) -> Action:
    since, _, page = reason.partition(":")
    if not t.waiting or reason_of(t.waiting_since) != since:
        return Action("gone")  # answered, no longer open, or a newer wait has its own watch
    waited = minutes(now - t.waiting_since)
    if step == REPAGE:
        page = int(page or 2)
        if t.priority != "urgent" or page > MAX_PAGES or not settings.on_call:
            return Action("gone")
        return Action("done", page=page, then=_repage(since, page + 1, now, settings),
                      note=f"Still no public answer: the customer has waited {waited}. On-call "
                           f"paged again ({page} of {MAX_PAGES}).")
    due = t.waiting_since + first_response_limit(t.priority, settings)
    if now < due and not early:
        return Action("waiting", retry_at=due)  # the priority was lowered meanwhile
    up = raised(t.priority)
    urgent = t.priority == "urgent" and bool(settings.on_call)  # someone to page
    note = (f"No public answer yet: the customer has waited {waited} (limit for "
            f"{t.priority or 'normal'} tickets: {minutes(first_response_limit(t.priority, settings))}).")
    if up != (t.priority or "normal"):
        note += f" Hotline raised the priority to {up}."
    if urgent:
        note += f" On-call paged again (1 of {MAX_PAGES})."
    return Action("done", note=note, tags=(OVERDUE_TAG,),
                  priority=up if up != t.priority else None,
                  page=1 if urgent else None,
                  then=_repage(since, 2, now, settings) if urgent else None)


def _repage(since: str, page: int, now: float, settings: Settings) -> Schedule | None:
    if page > MAX_PAGES:
        return None
    return Schedule(REPAGE, f"{since}:{page}", now + settings.followups.repage_minutes * 60, True)


# -- quiet hours and the customer's time zone ---------------------------------

def quiet_until(now: float, zone: ZoneInfo, quiet: tuple[time, time] | None) -> float | None:
    """When quiet hours end, if `now` falls inside them in `zone`; else None."""
    if not quiet:
        return None
    start, end = quiet
    local = datetime.fromtimestamp(now, timezone.utc).astimezone(zone)
    t = local.time().replace(tzinfo=None)
    if start <= end:
        inside, day = start <= t < end, local.date()
    elif t >= start:
        inside, day = True, local.date() + timedelta(days=1)
    else:
        inside, day = t < end, local.date()
    if not inside:
        return None
    return datetime.combine(day, end, tzinfo=zone).timestamp()


def customer_zone(requester_zone: str | None, phone: str, team_zone: ZoneInfo) -> ZoneInfo:
    """The requester's desk time zone, else the number's region when it has one zone, else the team's."""
    for name in [requester_zone] + _number_zones(phone):
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return team_zone


def _number_zones(phone: str) -> list[str]:
    try:
        zones = phone_timezones.time_zones_for_number(phonenumbers.parse(phone))
    except phonenumbers.NumberParseException:
        return []
    zones = [z for z in zones if z != "Etc/Unknown"]
    return zones if len(zones) == 1 else []


# -- survey answers ------------------------------------------------------------

_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
          "uno": 1, "una": 1, "dos": 2, "tres": 3, "cuatro": 4, "cinco": 5}
_RATING = re.compile(
    r"^\s*(?:(?P<digit>[1-5])(?![\w.,]*\d)(?![^\W\d_])|(?P<word>" + "|".join(_WORDS) + r")\b)"
    r"(?:\s*(?:/|out of|of|de)\s*(?:5|five|cinco)\b)?"
    r"\s*(?:stars?\b|estrellas?\b)?(?P<rest>.*)$", re.IGNORECASE | re.DOTALL)
_STARS = re.compile(r"^\s*((?:⭐|★|\*)\s*){1,5}$")
# After a number word, only these may follow directly: "four thanks", "cuatro gracias".
_COURTESY = re.compile(r"^\s*(?:$|[^\w\s]|thanks?\b|thank you\b|thx\b|gracias\b|great\b|good\b|"
                       r"bien\b|buen[oa]?\b)", re.IGNORECASE)


def parse_rating(text: str) -> tuple[int, str] | None:
    """An answer to the survey: (1..5, the customer's comment), or None for anything else.

    Digits, English and Spanish number words, "4/5", "5 stars", a row of stars;
    "4 thanks!" is 4 with the comment "thanks!". A number word must stand alone or
    be followed by punctuation or thanks, so "one more thing…" is not a rating.
    """
    text = (text or "").strip()
    stars = _STARS.match(text)
    if stars:
        return len(re.findall(r"⭐|★|\*", text)), ""
    match = _RATING.match(text)
    if not match:
        return None
    rest = match.group("rest")
    if match.group("word"):
        if not _COURTESY.match(rest):
            return None
        score = _WORDS[match.group("word").lower()]
    else:
        score = int(match.group("digit"))
    comment = rest.strip().lstrip("-–—:,.;)").strip()
    if not re.search(r"\w", comment):
        comment = ""  # only emoji or punctuation: no words to record
    return score, comment
