"""Follow-ups end to end (SPEC 7): webhooks → Redis → real RQ workers with the scheduler →
zenpy/twilio against `responses`, with the clock moved by time-machine."""
import dataclasses
import os
import re
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import time_machine
import yaml

from bot import jobs, keys, runtime
from bot.config import ROOT
from bot.desk.local import LocalDesk
from tests.conftest import QUEUES, run_due, run_jobs, wait_for
from tests.test_agent_replies import hint
from tests.test_conversation_e2e import CUSTOMER, text
from tests.test_local_mode import local  # noqa: F401 (fixture)

ONCALL = "+15005550009"
# Late morning in Los Angeles (the mock requester's zone), a year from now, so a real
# worker process on the real clock never finds these follow-ups due.
T0 = (datetime.now(timezone.utc) + timedelta(days=365)).replace(hour=18, minute=0, second=0,
                                                                 microsecond=0)


def settings_file(tmp_path: Path, **changes) -> Path:
    data = yaml.safe_load((ROOT / "config" / "settings.yaml").read_text())
    data["business_hours"] = {d: ["00:00", "23:59"] for d in ("mon", "tue", "wed", "thu", "fri",
                                                             "sat", "sun")}
    data["conversations"]["coalesce_quiet_ms"] = 0
    data.update(changes)
    path = tmp_path / "followups.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


@pytest.fixture
def fu_rt(config, conn, tmp_path, monkeypatch):
    built = runtime.build(dataclasses.replace(config, settings_path=settings_file(tmp_path)))
    monkeypatch.setattr(runtime, "get", lambda: built)
    return built


@pytest.fixture
def clock():
    with time_machine.travel(T0, tick=True) as traveller:
        yield traveller


def later(clock, conn, **delta) -> None:
    clock.shift(timedelta(**delta))
    run_due(conn)


def steps(conn, rt, ticket_id) -> list[str]:
    return [f["step"] for f in jobs.scheduled_followups(conn, rt.config, ticket_id)]


def texts_to(twilio, number, start: str) -> list[str]:
    return [m["body"] for m in twilio.sent() if m["to"] == number and m["body"].startswith(start)]


def counted(conn, step: str, outcome: str) -> int:
    """hotline_followups_total{step,outcome} as kept in Redis (bot.metrics)."""
    return int(conn.hget("hotline:metrics:hotline_followups_total", f"{step}\x1f{outcome}") or 0)


def ticket(zendesk, ticket_id) -> dict:
    return zendesk._get("ticket", ticket_id)


def new_case(client, conn, zendesk, words: str) -> int:
    text(client, words)
    run_due(conn)
    return zendesk.all("ticket")[-1]["id"]


def test_unanswered_emergency_escalates_and_pages_on_call_three_times(client, conn, fu_rt, zendesk,
                                                                       twilio, clock):
    tid = new_case(client, conn, zendesk, "my dog got hit by a car")
    assert ticket(zendesk, tid)["priority"] == "urgent"
    [watch] = jobs.scheduled_followups(conn, fu_rt.config, tid)
    assert (watch["step"], watch["queue"]) == ("first_response", "hotline-urgent")

    later(clock, conn, minutes=4)
    assert texts_to(twilio, ONCALL, "STILL UNANSWERED") == []
    later(clock, conn, minutes=2)
    [page] = texts_to(twilio, ONCALL, "STILL UNANSWERED")
    assert f"/agent/tickets/{tid}" in page and "car" not in page and "555" not in page
    t = ticket(zendesk, tid)
    assert "hotline_overdue" in t["tags"] and t["priority"] == "urgent"
    [overdue] = [n for n in zendesk.notes(tid) if n.startswith("No public answer yet")]
    assert "has waited 6 minutes" in overdue and "limit for urgent tickets: 5 minutes" in overdue

    later(clock, conn, minutes=10)
    later(clock, conn, minutes=10)
    later(clock, conn, minutes=30)
    assert len(texts_to(twilio, ONCALL, "STILL UNANSWERED")) == 3
    assert steps(conn, fu_rt, tid) == []
    assert len([n for n in zendesk.notes(tid) if "On-call paged again" in n]) == 3
    assert (counted(conn, "first_response", "escalated"), counted(conn, "repage", "escalated")) == (1, 2)


def test_overdue_ordinary_ticket_is_raised_one_step_without_paging(client, conn, fu_rt, zendesk,
                                                                   twilio, clock):
    tid = new_case(client, conn, zendesk, "how do I change my account email")
    before = ticket(zendesk, tid)["priority"]
    assert before == "low"
    later(clock, conn, minutes=481)
    t = ticket(zendesk, tid)
    assert t["priority"] == "normal" and "hotline_overdue" in t["tags"]
    assert texts_to(twilio, ONCALL, "STILL UNANSWERED") == []
    calls = zendesk.calls()
    later(clock, conn, hours=24)  # once per reason: nothing more
    assert zendesk.calls() == calls


def test_an_agents_public_answer_cancels_the_watch(client, conn, fu_rt, zd_client, zendesk, twilio,
                                                   clock):
    tid = new_case(client, conn, zendesk, "my dog got hit by a car")
    agent = zendesk.add_agent()
    zendesk.agent_comment(tid, agent["id"], "Calling you now")
    zendesk.set_ticket(tid, status="open")  # answered, and left open
    hint(zd_client, tid, "ev-answer")
    run_due(conn)
    assert "first_response" not in steps(conn, fu_rt, tid)  # cancelled in RQ, not only skipped
    assert counted(conn, "first_response", "cancelled") == 1

    later(clock, conn, minutes=30)
    assert texts_to(twilio, ONCALL, "STILL UNANSWERED") == []
    assert "hotline_overdue" not in ticket(zendesk, tid)["tags"]


def test_an_agents_answer_on_an_email_ticket_cancels_the_watch(config, conn, tmp_path, monkeypatch,
                                                                zd_client, zendesk, twilio, clock):
    from tests.test_sendgrid import PASSWORD, USER, email, post
    from web import create_app

    cfg = dataclasses.replace(config, settings_path=settings_file(tmp_path),
                              sendgrid_inbound_user=USER, sendgrid_inbound_password=PASSWORD)
    built = runtime.build(cfg)
    monkeypatch.setattr(runtime, "get", lambda: built)
    mail = create_app(cfg, maintenance=False).test_client()
    assert post(mail, email(subject="Sitter", text="the sitter never showed up")).status_code == 200
    run_due(conn)
    [t] = zendesk.all("ticket")
    assert steps(conn, built, t["id"]) == ["first_response"]

    zendesk.agent_comment(t["id"], zendesk.add_agent()["id"], "We are on it")  # mailed by Zendesk
    zendesk.set_ticket(t["id"], status="open")
    hint(zd_client, t["id"], "ev-mail-answer")
    run_due(conn)
    assert steps(conn, built, t["id"]) == []
    later(clock, conn, hours=10)
    assert "hotline_overdue" not in ticket(zendesk, t["id"])["tags"]


def pending_case(client, conn, zendesk, zd_client) -> int:
    tid = new_case(client, conn, zendesk, "I need to file a claim for the vet bill")
    agent = zendesk.add_agent()
    zendesk.agent_comment(tid, agent["id"], "Please send us the vet invoice")  # submitted as pending
    hint(zd_client, tid, "ev-pending")
    run_due(conn)
    return tid


def test_pending_ticket_gets_a_reminder_then_a_last_notice(client, conn, fu_rt, zd_client, zendesk,
                                                          twilio, clock):
    tid = pending_case(client, conn, zendesk, zd_client)
    assert steps(conn, fu_rt, tid) == ["reminder"]

    later(clock, conn, hours=23)
    assert texts_to(twilio, CUSTOMER, "Hi, this is the Trust & Safety team about case") == []
    later(clock, conn, hours=1, minutes=1)
    assert len(texts_to(twilio, CUSTOMER, "Hi, this is the Trust & Safety team about case")) == 1
    assert steps(conn, fu_rt, tid) == ["last_notice"]
    later(clock, conn, hours=48)
    assert len(texts_to(twilio, CUSTOMER, "Trust & Safety, case")) == 1
    notes = zendesk.notes(tid)
    assert any(n.startswith("Hotline texted the customer a reminder") for n in notes)
    assert any(n.startswith("Hotline texted the customer the last notice") for n in notes)
    assert ticket(zendesk, tid)["status"] == "pending"  # notes never change the status
    assert steps(conn, fu_rt, tid) == []


def test_a_customer_reply_cancels_the_reminders(client, conn, fu_rt, zd_client, zendesk, twilio, clock):
    tid = pending_case(client, conn, zendesk, zd_client)
    assert "reminder" in steps(conn, fu_rt, tid)  # scheduled, until the customer answers
    later(clock, conn, hours=2)
    text(client, "here is the invoice")
    run_due(conn)
    assert ticket(zendesk, tid)["status"] == "open"
    assert "reminder" not in steps(conn, fu_rt, tid)

    later(clock, conn, hours=80)
    assert texts_to(twilio, CUSTOMER, "Hi, this is the Trust & Safety team about case") == []
    assert texts_to(twilio, CUSTOMER, "Trust & Safety, case") == []


def solved_case(client, conn, zendesk, zd_client, words="how do I change my account email") -> int:
    tid = new_case(client, conn, zendesk, words)
    agent = zendesk.add_agent()
    zendesk.agent_comment(tid, agent["id"], "Done: it is changed")
    zendesk.set_ticket(tid, status="solved")
    hint(zd_client, tid, f"ev-solved-{tid}")
    run_due(conn)
    return tid


SURVEY = "How did we do with case"


@pytest.mark.parametrize("answer, score, comment", [("cuatro, gracias", 4, "gracias"),
                                                    ("5 thanks!", 5, "thanks!")])
def test_survey_answered_in_words_or_digits_is_recorded_on_that_ticket(
        answer, score, comment, client, conn, fu_rt, zd_client, zendesk, twilio, clock):
    tid = solved_case(client, conn, zendesk, zd_client)
    assert steps(conn, fu_rt, tid) == ["satisfaction"]
    later(clock, conn, hours=24, minutes=1)
    [survey] = texts_to(twilio, CUSTOMER, SURVEY)
    assert f"#{tid}" in survey
    public_before = zendesk.texts(tid)

    later(clock, conn, hours=3)
    text(client, answer)
    run_due(conn)

    t = ticket(zendesk, tid)
    assert f"csat_{score}" in t["tags"] and t["status"] == "solved"
    assert len(zendesk.all("ticket")) == 1 and zendesk.texts(tid) == public_before
    [rated] = [n for n in zendesk.notes(tid) if n.startswith("The customer rated")]
    assert f"{score} out of 5" in rated and rated.endswith(f"Their comment: {comment}")
    assert len(texts_to(twilio, CUSTOMER, "Thank you for your rating")) == 1
    assert (counted(conn, "satisfaction", "sent"), counted(conn, "satisfaction", "answered")) == (1, 1)

    text(client, "2")  # one answer counts: the next is an ordinary message
    run_due(conn)
    assert zendesk.texts(tid)[-1] == "2" and "csat_2" not in ticket(zendesk, tid)["tags"]
    later(clock, conn, days=30)  # once per ticket
    assert len(texts_to(twilio, CUSTOMER, SURVEY)) == 1


def test_an_answer_after_the_window_is_an_ordinary_message(client, conn, fu_rt, zd_client, zendesk,
                                                           twilio, clock):
    tid = solved_case(client, conn, zendesk, zd_client)
    later(clock, conn, hours=24, minutes=1)
    assert len(texts_to(twilio, CUSTOMER, SURVEY)) == 1
    later(clock, conn, hours=73)
    text(client, "5")
    run_due(conn)

    assert not [tag for tag in ticket(zendesk, tid)["tags"] if tag.startswith("csat_")]
    [_, newer] = zendesk.all("ticket")
    assert zendesk.texts(newer["id"]) == ["5"]
    assert texts_to(twilio, CUSTOMER, "Thank you for your rating") == []


def test_a_rating_that_reads_as_an_emergency_is_a_message(client, conn, fu_rt, zd_client, zendesk,
                                                          twilio, clock):
    tid = solved_case(client, conn, zendesk, zd_client)
    later(clock, conn, hours=24, minutes=1)
    assert len(texts_to(twilio, CUSTOMER, SURVEY)) == 1  # surveyed: a rating would count
    text(client, "1 my dog is bleeding again")
    run_due(conn)

    t = ticket(zendesk, tid)
    assert not [tag for tag in t["tags"] if tag.startswith("csat_")]
    assert t["status"] == "open" and zendesk.texts(tid)[-1] == "1 my dog is bleeding again"


def test_no_survey_while_another_ticket_of_theirs_is_an_open_emergency(
        client, conn, fu_rt, zd_client, zendesk, twilio, clock):
    tid = solved_case(client, conn, zendesk, zd_client)
    # Meanwhile the customer's conversation moved to an emergency still open (say a case an
    # agent opened for them and linked), as Hotline last saw it.
    conv = conn.hget(keys.ticket(tid), "conv").decode()
    other = zendesk.add_ticket(ticket(zendesk, tid)["requester_id"], status="open")
    conn.hset(keys.conversation(conv), "ticket_id", other["id"])
    conn.hset(keys.ticket(other["id"]), mapping={"conv": conv, "priority": "urgent", "status": "open"})
    assert steps(conn, fu_rt, tid) == ["satisfaction"]  # it was due, and is skipped when it runs

    later(clock, conn, hours=24, minutes=1)
    assert texts_to(twilio, CUSTOMER, SURVEY) == []
    later(clock, conn, days=3)  # skipped for good, not postponed
    assert texts_to(twilio, CUSTOMER, SURVEY) == [] and steps(conn, fu_rt, tid) == []
    assert counted(conn, "satisfaction", "skipped") == 1


def test_quiet_hours_hold_a_survey_until_morning_in_the_customers_zone(
        client, conn, fu_rt, zd_client, zendesk, twilio, clock):
    tid = solved_case(client, conn, zendesk, zd_client)
    user = zendesk._get("user", ticket(zendesk, tid)["requester_id"])
    zendesk._put("user", dict(user, iana_time_zone="Asia/Tokyo", time_zone="Tokyo"))
    # Due at 03:00 in Tokyo (10:00 in Los Angeles, the team's zone): held until 08:00 there.
    later(clock, conn, hours=24, minutes=1)
    assert texts_to(twilio, CUSTOMER, SURVEY) == []
    [held] = jobs.scheduled_followups(conn, fu_rt.config, tid)
    assert held["step"] == "satisfaction"
    assert held["due"].astimezone(timezone(timedelta(hours=9))).strftime("%H:%M") == "08:00"
    later(clock, conn, hours=4, minutes=55)
    assert texts_to(twilio, CUSTOMER, SURVEY) == []
    later(clock, conn, minutes=5)
    assert len(texts_to(twilio, CUSTOMER, SURVEY)) == 1


def test_a_scheduled_follow_up_outlives_a_killed_worker(client, conn, fu_rt, zendesk, twilio, clock,
                                                        redis_server):
    tid = new_case(client, conn, zendesk, "my dog got hit by a car")
    assert steps(conn, fu_rt, tid) == ["first_response"]
    # A real worker with its scheduler takes charge of the queues, and is killed (SIGKILL,
    # no clean-up) while the follow-up waits in RQ's scheduled registry.
    worker = subprocess.Popen(
        [str(Path(sys.executable).parent / "rq"), "worker", "--with-scheduler", "--config",
         "bot.rqconfig", *QUEUES],
        cwd=ROOT, env={**os.environ, "REDIS_URL": redis_server.url}, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: conn.exists("rq:scheduler-lock:hotline-urgent"), timeout=30,
                 what="the worker's scheduler to take the lock")
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
    # The dead scheduler's lock expires about a minute later; delete it instead of waiting.
    conn.delete(*(f"rq:scheduler-lock:{q}" for q in QUEUES))
    assert steps(conn, fu_rt, tid) == ["first_response"]

    later(clock, conn, minutes=6)  # a new worker, after the restart
    assert len(texts_to(twilio, ONCALL, "STILL UNANSWERED")) == 1
    assert "hotline_overdue" in ticket(zendesk, tid)["tags"]


def test_followups_list_and_the_local_desks_run_now(local, conn):
    app, built = local
    runner = app.test_cli_runner()
    runner.invoke(args=["hotline", "simulate", "sms", "--from", "+15551230001", "my dog got hit by a car"])
    run_jobs(conn)
    [t] = LocalDesk(built.config.local_db).tickets()

    listed = runner.invoke(args=["hotline", "followups", "list"]).output
    assert f"ticket {t['id']}" in listed and "first_response" in listed and "hotline-urgent" in listed
    assert "555" not in listed and "car" not in listed

    web = app.test_client()
    page = web.get(f"/local/desk/{t['id']}").get_data(as_text=True)
    assert "first_response" in page and "Run due now" in page
    zone = app.extensions["hotline"].settings.timezone  # shown in the team's zone, named
    assert re.search(r"first_response · due \d{4}-\d\d-\d\d \d\d:\d\d:\d\d " + f"{datetime.now(zone):%Z}</span>", page)
    assert web.post(f"/local/desk/{t['id']}/followups").status_code == 302
    run_due(conn)

    [t] = LocalDesk(built.config.local_db).tickets()
    assert "hotline_overdue" in t["tags"].split()
    assert "STILL UNANSWERED" in app.test_client().get("/local/outbox").get_data(as_text=True)
    listed = runner.invoke(args=["hotline", "followups", "list"]).output
    assert "repage" in listed and "first_response" not in listed  # the next page, in 10 minutes


def test_a_follow_up_that_keeps_failing_is_listed_and_replayable(client, app, conn, fu_rt, zendesk,
                                                                 twilio, clock):
    tid = new_case(client, conn, zendesk, "my dog got hit by a car")
    zendesk.fail_next("GET", rf"/tickets/{tid}\.json", 503, times=7)  # the step's read, every try
    later(clock, conn, minutes=6)
    for _ in range(7):  # RQ's retries, 5 s to 30 min apart
        later(clock, conn, minutes=31)
    runner = app.test_cli_runner()
    listed = runner.invoke(args=["hotline", "failed", "list"]).output
    assert f"followup({tid}, first_response)" in listed
    assert texts_to(twilio, ONCALL, "STILL UNANSWERED") == []

    assert runner.invoke(args=["hotline", "failed", "requeue"]).output.startswith("requeued 1 job")
    run_due(conn)  # Zendesk answers again: the overdue ticket is escalated after all
    assert len(texts_to(twilio, ONCALL, "STILL UNANSWERED")) == 1
