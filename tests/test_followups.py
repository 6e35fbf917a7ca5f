"""The follow-ups' decisions (bot.followups): plain data in, plain answers out."""
from datetime import datetime, time, timezone
from zoneinfo import ZoneInfo

import pytest

from bot import followups as fu, texts
from bot.followups import Facts, TicketState, decide, parse_rating, plan, quiet_until
from bot.settings import SettingsError, parse_settings

S = parse_settings({"timezone": "America/Los_Angeles"})
LA = ZoneInfo("America/Los_Angeles")
T0 = datetime(2026, 12, 1, 18, 0, tzinfo=timezone.utc).timestamp()  # 10:00 in Los Angeles


def at(hours: float = 0, minutes: float = 0) -> float:
    return T0 + hours * 3600 + minutes * 60


def facts(**state) -> Facts:
    return Facts(state=TicketState(**{"texts": True, **state}), zone=LA)


# -- settings -------------------------------------------------------------------

def test_settings_defaults_match_the_spec_and_fractions_are_allowed():
    f = S.followups
    assert f.first_response_minutes == {"urgent": 5, "high": 30, "normal": 240, "low": 480}
    assert (f.repage_minutes, f.pending_reminder_hours) == (10, (24, 72))
    assert (f.satisfaction_after_hours, f.satisfaction_window_hours) == (24, 72)
    assert S.quiet_hours == (time(21), time(8))
    quick = parse_settings({"followups": {"first_response_minutes": {"urgent": 0.05},
                                          "pending_reminder_hours": [0.01, 0.02]},
                            "quiet_hours": None})
    assert quick.followups.first_response_minutes["urgent"] == 0.05 and quick.quiet_hours is None


@pytest.mark.parametrize("data, where", [
    ({"followups": {"first_response_minutes": {"critical": 5}}}, "first_response_minutes"),
    ({"followups": {"pending_reminder_hours": [72, 24]}}, "pending_reminder_hours"),
    ({"followups": {"repage_minutes": -1}}, "repage_minutes"),
    ({"quiet_hours": {"start": "21:00"}}, "quiet_hours"),
    ({"quiet_hours": {"start": "9pm", "end": "08:00"}}, "quiet_hours.start"),
])
def test_settings_mistakes_name_the_key(data, where):
    with pytest.raises(SettingsError, match=where):
        parse_settings(data)


# -- planning -------------------------------------------------------------------

def test_a_waiting_customer_gets_a_watch_by_priority_and_planning_again_asks_nothing():
    state = TicketState(status="new", priority="urgent", waiting_since=at())
    [watch], cancel = plan(state, S)
    assert (watch.step, watch.due, watch.urgent, cancel) == ("first_response", at(minutes=5), True, [])
    again = TicketState(status="new", priority="urgent", waiting_since=at(),
                        scheduled={"first_response": (watch.reason, watch.due)})
    assert plan(again, S) == ([], [])


def test_a_raised_priority_brings_the_watch_forward():
    state = TicketState(status="open", priority="urgent", waiting_since=at(),
                        scheduled={"first_response": (fu.reason_of(at()), at(minutes=240))})
    [watch], _ = plan(state, S)
    assert watch.due == at(minutes=5)


def test_an_answer_cancels_the_watch_and_its_repages():
    state = TicketState(status="open", priority="urgent", waiting_since=at(), answered_at=at(minutes=3),
                        scheduled={"first_response": ("x", 1.0), "repage": ("x:2", 2.0)})
    assert plan(state, S) == ([], ["first_response", "repage"])


def test_pending_text_conversation_gets_reminder_then_last_notice_and_email_gets_none():
    pending = TicketState(status="pending", status_since=at(), texts=True)
    [reminder], _ = plan(pending, S)
    assert (reminder.step, reminder.due) == ("reminder", at(hours=24))
    done = TicketState(status="pending", status_since=at(), texts=True,
                       done=frozenset({f"reminder:{reminder.reason}"}))
    [last], _ = plan(done, S)
    assert (last.step, last.due) == ("last_notice", at(hours=72))
    assert plan(TicketState(status="pending", status_since=at(), texts=False), S) == ([], [])


def test_any_status_change_cancels_what_is_left_and_solved_plans_the_survey():
    solved = TicketState(status="solved", status_since=at(), texts=True,
                         scheduled={"reminder": ("1", 1.0)})
    [survey], cancel = plan(solved, S)
    assert (survey.step, survey.due, cancel) == ("satisfaction", at(hours=24), ["reminder"])
    off = parse_settings({"followups": {"satisfaction_after_hours": 0}})
    assert plan(TicketState(status="solved", status_since=at(), texts=True), off) == ([], [])


def test_a_step_held_for_quiet_hours_keeps_its_later_time():
    state = TicketState(status="solved", status_since=at(), texts=True,
                        scheduled={"satisfaction": (fu.reason_of(at()), at(hours=30))})
    assert plan(state, S) == ([], [])


# -- a due step -----------------------------------------------------------------

def test_overdue_normal_ticket_is_tagged_noted_and_raised_one_step_without_paging():
    action = decide("first_response", fu.reason_of(at()),
                    facts(status="open", priority="normal", waiting_since=at()), at(hours=4, minutes=1), S)
    assert action.outcome == "done" and action.tags == ("hotline_overdue",)
    assert action.priority == "high" and action.page is None and action.then is None
    assert "waited 4 h 01 min" in action.note and "raised the priority to high" in action.note


ONCALL = parse_settings({"on_call": ["+15005550009"]})


def test_overdue_urgent_ticket_pages_three_times_in_all():
    f = facts(status="new", priority="urgent", waiting_since=at())
    alone = decide("first_response", fu.reason_of(at()), f, at(minutes=6), S)  # nobody on call
    assert (alone.page, alone.then, alone.tags) == (None, None, ("hotline_overdue",))
    first = decide("first_response", fu.reason_of(at()), f, at(minutes=6), ONCALL)
    assert (first.priority, first.page, first.then.step, first.then.urgent) == (None, 1, "repage", True)
    assert first.then.due == at(minutes=16)
    second = decide("repage", first.then.reason, f, at(minutes=16), ONCALL)
    third = decide("repage", second.then.reason, f, at(minutes=26), ONCALL)
    assert (second.page, third.page, third.then) == (2, 3, None)


def test_a_watch_does_nothing_once_answered_closed_or_superseded():
    reason = fu.reason_of(at())
    answered = facts(status="open", priority="high", waiting_since=at(), answered_at=at(minutes=1))
    solved = facts(status="solved", priority="high", waiting_since=at())
    newer = facts(status="open", priority="high", waiting_since=at(hours=1))
    for f in (answered, solved, newer):
        assert decide("first_response", reason, f, at(hours=2), S).outcome == "gone"


def test_a_lowered_priority_waits_for_its_own_limit():
    action = decide("first_response", fu.reason_of(at()),
                    facts(status="open", priority="low", waiting_since=at()), at(minutes=31), S)
    assert (action.outcome, action.retry_at) == ("waiting", at(minutes=480))


def test_reminder_texts_notes_and_schedules_the_last_notice():
    f = facts(status="pending", status_since=at(), priority="normal")
    action = decide("reminder", fu.reason_of(at()), f, at(hours=24), S)
    assert (action.text_customer, action.then.step, action.then.due) == (True, "last_notice", at(hours=72))
    assert texts.followup(7, "reminder", fu.reason_of(at())).template == "sms/reminder"
    assert action.note.startswith("Hotline texted the customer a reminder")
    last = decide("last_notice", fu.reason_of(at()), f, at(hours=72), S)
    assert (last.text_customer, last.then) == (True, None)
    assert texts.followup(7, "last_notice", fu.reason_of(at())).template == "sms/last_notice"


def test_reminder_is_gone_after_a_reply_or_a_new_pending_period():
    reopened = facts(status="open", status_since=at(hours=3))
    pending_again = facts(status="pending", status_since=at(hours=5))
    for f in (reopened, pending_again):
        assert decide("reminder", fu.reason_of(at()), f, at(hours=24), S).outcome == "gone"


def test_survey_never_after_opt_out_nor_during_another_emergency_nor_twice_in_a_window():
    state = TicketState(status="solved", status_since=at(), texts=True)
    reason = fu.reason_of(at())
    assert decide("satisfaction", reason, Facts(state, LA, opted_out=True), at(hours=24), S).outcome == "opted_out"
    assert decide("satisfaction", reason, Facts(state, LA, other_emergency=True), at(hours=24), S).outcome == "skipped"
    assert decide("satisfaction", reason, Facts(state, LA, surveyed_recently=True), at(hours=24), S).outcome == "skipped"
    assert decide("satisfaction", reason, Facts(state, LA), at(hours=24), S).text_customer
    assert texts.followup(7, "satisfaction", reason).template == "sms/satisfaction"


def test_quiet_hours_hold_customer_texts_until_morning_in_their_zone_but_not_urgent_ones():
    tokyo = ZoneInfo("Asia/Tokyo")  # 18:00 UTC is 03:00 in Tokyo
    state = TicketState(status="solved", status_since=at(hours=-24), texts=True)
    held = decide("satisfaction", fu.reason_of(at(hours=-24)), Facts(state, tokyo), at(), S)
    assert held.outcome == "held"
    assert datetime.fromtimestamp(held.retry_at, tokyo).strftime("%H:%M") == "08:00"
    urgent = TicketState(status="pending", status_since=at(hours=-24), texts=True, priority="urgent")
    assert decide("reminder", fu.reason_of(at(hours=-24)), Facts(urgent, tokyo), at(), S).outcome == "done"
    solved_urgent = TicketState(status="solved", status_since=at(hours=-24), texts=True, priority="urgent")
    survey = decide("satisfaction", fu.reason_of(at(hours=-24)), Facts(solved_urgent, tokyo), at(), S)
    assert survey.outcome == "held"  # a survey is never urgent
    [planned], _ = plan(solved_urgent, S)
    assert not planned.urgent


def test_waits_in_words():
    assert [fu.minutes(s) for s in (20, 60, 7 * 60, 185 * 60, 50 * 3600)] == [
        "under a minute", "1 minute", "7 minutes", "3 h 05 min", "2 days 2 h"]


def test_quiet_until_across_midnight_and_daytime_windows():
    night = (time(21), time(8))
    def local(h, m=0):
        return datetime(2026, 12, 1, h, m, tzinfo=LA).timestamp()
    assert quiet_until(local(20, 59), LA, night) is None
    assert quiet_until(local(21), LA, night) == datetime(2026, 12, 2, 8, tzinfo=LA).timestamp()
    assert quiet_until(local(7, 59), LA, night) == local(8)
    assert quiet_until(local(12), LA, (time(12), time(13))) == local(13)
    assert quiet_until(local(12), LA, None) is None


def test_customer_zone_prefers_the_desk_then_a_one_zone_number_then_the_team():
    assert fu.customer_zone("Europe/Madrid", "+15551230001", LA) == ZoneInfo("Europe/Madrid")
    assert fu.customer_zone(None, "+34912345678", LA) == ZoneInfo("Europe/Madrid")   # Spain: one zone
    assert fu.customer_zone(None, "+15551230001", ZoneInfo("UTC")) == ZoneInfo("UTC")  # US: many
    assert fu.customer_zone("Not/AZone", "+15551230001", LA) == LA


# -- survey answers -------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("4", (4, "")), ("5 thanks!", (5, "thanks!")), ("5 ⭐", (5, "")), ("four", (4, "")),
    ("Cuatro", (4, "")), ("cinco, gracias", (5, "gracias")), ("3/5 the sitter was late", (3, "the sitter was late")),
    ("2 - nobody called me back", (2, "nobody called me back")), ("⭐⭐⭐⭐", (4, "")),
    ("five stars", (5, "")), ("1.", (1, "")), ("four thanks", (4, "thanks")),
])
def test_ratings_in_digits_and_words(text, expected):
    assert parse_rating(text) == expected


@pytest.mark.parametrize("text", [
    "", "hello", "10", "6", "0", "5pm works", "one more thing: my dog is limping",
    "dos perros", "I give it a 5", "4.5", "2026 was hard",
])
def test_anything_else_is_not_a_rating(text):
    assert parse_rating(text) is None
