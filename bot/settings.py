"""Operational settings: the YAML named by HOTLINE_SETTINGS (SPEC 5, 6).

Loaded and checked once at start; a mistake stops the service with a message
that names the key at fault.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from bot.phones import to_e164
from bot.triage import Triage, TriageError
from bot.triage import parse as parse_triage

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
PRIORITIES = ("low", "normal", "high", "urgent")


@dataclass(frozen=True)
class Followups:
    """SPEC 7 `followups:` — delays of the steps Hotline schedules after the first answer."""

    first_response_minutes: dict[str, float] = field(default_factory=lambda: {
        "urgent": 5, "high": 30, "normal": 240, "low": 480})
    repage_minutes: float = 10
    pending_reminder_hours: tuple[float, float] = (24, 72)
    satisfaction_after_hours: float = 24
    satisfaction_window_hours: float = 72


class SettingsError(ValueError):
    """The settings file cannot be used; the message says where and why."""


@dataclass(frozen=True)
class Settings:
    timezone: ZoneInfo
    business_hours: dict[str, tuple[time, time]]
    reopen_window_hours: float = 72
    autoreply_window_hours: float = 4
    coalesce_quiet_ms: int = 400
    coalesce_max_ms: int = 1500
    media_max_bytes: int = 5 * 1024 * 1024
    media_allowed_types: frozenset[str] = field(default_factory=frozenset)
    location_field_id: int | None = None
    zendesk_requests_per_minute: int = 400
    on_call: tuple[str, ...] = ()
    languages: tuple[str, ...] = ("en", "es")
    triage: Triage = field(default_factory=lambda: parse_triage({}))
    email_acknowledge: bool = False
    email_max_bytes: int = 30 * 1024 * 1024
    email_spam_threshold: float = 5.0
    voice_language: str = "en"
    voice_max_seconds: int = 120
    voice_min_seconds: int = 3
    voice_dial_timeout: int = 20
    reconcile_minutes: float = 5            # SPEC 10; 0 turns the scheduled run off
    reconcile_lookback_hours: float = 24    # the first run, with no high-water mark yet
    reconcile_overlap_minutes: float = 2    # never less than 2 (clock skew, late records)
    followups: Followups = field(default_factory=Followups)
    quiet_hours: tuple[time, time] | None = (time(21, 0), time(8, 0))

    def in_business_hours(self, when: datetime) -> bool:
        """Whether `when` (aware) falls inside the team's business hours."""
        local = when.astimezone(self.timezone)
        hours = self.business_hours.get(DAYS[local.weekday()])
        if not hours:
            return False
        start, end = hours
        return start <= local.time().replace(tzinfo=None) < end


def _parse_time(value, where: str) -> time:
    try:
        hh, mm = str(value).split(":")
        return time(int(hh), int(mm))
    except (ValueError, TypeError):
        raise SettingsError(f"{where}: {value!r} is not a time like 08:00") from None


def _number(section: dict, key: str, default, where: str, kind=float):
    value = section.get(key, default)
    if value is None:
        return default
    name = f"{where}{key}" if where.endswith(": ") else f"{where}.{key}"  # top-level keys
    try:
        value = kind(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{name}: {value!r} is not a number") from None
    if value < 0:
        raise SettingsError(f"{name}: must not be negative")
    return value


def parse_settings(data: dict, source: str = "settings") -> Settings:
    """Check a settings mapping and build `Settings` from it."""
    if not isinstance(data, dict):
        raise SettingsError(f"{source}: expected a mapping at the top level")
    try:
        tz = ZoneInfo(str(data.get("timezone", "UTC")))
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(f"{source}: timezone: unknown time zone {data.get('timezone')!r}") from None

    hours: dict[str, tuple[time, time]] = {}
    raw_hours = data.get("business_hours") or {}
    if not isinstance(raw_hours, dict):
        raise SettingsError(f"{source}: business_hours: expected a mapping of days")
    for day, span in raw_hours.items():
        where = f"{source}: business_hours.{day}"
        if day not in DAYS:
            raise SettingsError(f"{where}: unknown day (use {', '.join(DAYS)})")
        if span in (None, [], "closed"):
            continue
        if not isinstance(span, (list, tuple)) or len(span) != 2:
            raise SettingsError(f"{where}: expected [\"HH:MM\", \"HH:MM\"]")
        start, end = _parse_time(span[0], where), _parse_time(span[1], where)
        if not start < end:
            raise SettingsError(f"{where}: the opening time must come before the closing time")
        hours[day] = (start, end)

    conv = data.get("conversations") or {}
    media = data.get("media") or {}
    zendesk = data.get("zendesk") or {}
    allowed = media.get("allowed_types") or []
    if not isinstance(allowed, list):
        raise SettingsError(f"{source}: media.allowed_types: expected a list of MIME types")
    on_call = []
    for number in data.get("on_call") or []:
        e164 = to_e164(str(number))
        if not e164:
            raise SettingsError(f"{source}: on_call: {number!r} is not a phone number")
        on_call.append(e164)
    try:
        triage = parse_triage(data.get("triage"), source)
    except TriageError as exc:
        raise SettingsError(str(exc)) from None
    languages = tuple(str(x) for x in (data.get("languages") or ("en", "es")))
    followups = _followups(data.get("followups") or {}, f"{source}: followups")
    quiet = data.get("quiet_hours", {"start": "21:00", "end": "08:00"})
    if quiet in (None, {}, "off"):
        quiet_hours = None
    elif not isinstance(quiet, dict) or set(quiet) != {"start", "end"}:
        raise SettingsError(f"{source}: quiet_hours: expected {{start: \"21:00\", end: \"08:00\"}}")
    else:
        quiet_hours = (_parse_time(quiet["start"], f"{source}: quiet_hours.start"),
                       _parse_time(quiet["end"], f"{source}: quiet_hours.end"))
    voice = data.get("voice") or {}
    email = data.get("email") or {}
    overlap = _number(data, "reconcile_overlap_minutes", 2, f"{source}: ")
    if overlap < 2:
        raise SettingsError(f"{source}: reconcile_overlap_minutes: at least 2 (clock skew and "
                            f"records Twilio writes late)")
    return Settings(
        reconcile_minutes=_number(data, "reconcile_minutes", 5, f"{source}: "),
        reconcile_lookback_hours=_number(data, "reconcile_lookback_hours", 24, f"{source}: "),
        reconcile_overlap_minutes=overlap,
        email_acknowledge=bool(email.get("acknowledge", False)),
        email_max_bytes=_number(email, "max_bytes", 30 * 1024 * 1024, f"{source}: email", int),
        email_spam_threshold=_number(email, "spam_threshold", 5.0, f"{source}: email"),
        voice_language=str(voice.get("language", "en")),
        # Twilio transcribes recordings up to 120 s only.
        voice_max_seconds=min(120, _number(voice, "max_seconds", 120, f"{source}: voice", int)),
        voice_min_seconds=_number(voice, "min_seconds", 3, f"{source}: voice", int),
        voice_dial_timeout=_number(voice, "dial_timeout", 20, f"{source}: voice", int),
        on_call=tuple(on_call),
        followups=followups,
        quiet_hours=quiet_hours,
        languages=languages,
        triage=triage,
        timezone=tz,
        business_hours=hours,
        reopen_window_hours=_number(conv, "reopen_window_hours", 72, f"{source}: conversations"),
        autoreply_window_hours=_number(conv, "autoreply_window_hours", 4, f"{source}: conversations"),
        coalesce_quiet_ms=_number(conv, "coalesce_quiet_ms", 400, f"{source}: conversations", int),
        coalesce_max_ms=_number(conv, "coalesce_max_ms", 1500, f"{source}: conversations", int),
        media_max_bytes=_number(media, "max_bytes", 5 * 1024 * 1024, f"{source}: media", int),
        media_allowed_types=frozenset(str(t).lower() for t in allowed),
        location_field_id=_number(zendesk, "location_field_id", None, f"{source}: zendesk", int),
        zendesk_requests_per_minute=_number(zendesk, "requests_per_minute", 400,
                                            f"{source}: zendesk", int),
    )


def _followups(data: dict, where: str) -> Followups:
    if not isinstance(data, dict):
        raise SettingsError(f"{where}: expected a mapping")
    default = Followups()
    limits = data.get("first_response_minutes") or {}
    if not isinstance(limits, dict) or set(limits) - set(PRIORITIES):
        raise SettingsError(f"{where}.first_response_minutes: expected a mapping of "
                            f"{', '.join(PRIORITIES)} to minutes")
    minutes = dict(default.first_response_minutes)
    for priority in limits:
        minutes[priority] = _number(limits, priority, minutes[priority],
                                    f"{where}.first_response_minutes")
    delays = data.get("pending_reminder_hours", list(default.pending_reminder_hours))
    if not isinstance(delays, list) or len(delays) != 2:
        raise SettingsError(f"{where}.pending_reminder_hours: expected [reminder, last notice] hours")
    try:
        delays = tuple(float(d) for d in delays)
    except (TypeError, ValueError):
        raise SettingsError(f"{where}.pending_reminder_hours: {delays!r} are not numbers") from None
    if not 0 <= delays[0] < delays[1]:
        raise SettingsError(f"{where}.pending_reminder_hours: the last notice must come after the "
                            f"reminder")
    return Followups(
        first_response_minutes=minutes,
        repage_minutes=_number(data, "repage_minutes", default.repage_minutes, where),
        pending_reminder_hours=delays,
        satisfaction_after_hours=_number(data, "satisfaction_after_hours",
                                         default.satisfaction_after_hours, where),
        satisfaction_window_hours=_number(data, "satisfaction_window_hours",
                                          default.satisfaction_window_hours, where))


def load_settings(path: Path) -> Settings:
    """Read and check the settings file at `path`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise SettingsError(f"{path}:{line}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    _mark_rule_lines(text, data)
    return parse_settings(data, str(path))


def _mark_rule_lines(text: str, data: dict) -> None:
    """Note each triage rule's line in the file, so errors can name it."""
    rules = ((data or {}).get("triage") or {}).get("rules") if isinstance(data, dict) else None
    if not isinstance(rules, list):
        return
    root = yaml.compose(text)
    node = _child(_child(root, "triage"), "rules")
    if node is None:
        return
    for rule, item in zip(rules, node.value):
        if isinstance(rule, dict):
            rule["__line__"] = item.start_mark.line + 1


def _child(node, key):
    if node is None or not isinstance(node, yaml.MappingNode):
        return None
    for k, v in node.value:
        if getattr(k, "value", None) == key:
            return v
    return None
