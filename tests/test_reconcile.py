"""Reconciliation with Twilio (SPEC 10): what never reached Hotline is taken in once.

Twilio's REST lists are mocked with `responses` in their real shapes (2010 API
envelope, PageSize/PageToken paging, day-granular date filters); jobs run
through a real RQ worker against the private Redis.
"""
import dataclasses
import json
import re
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
from rq import Queue
from rq.job import Job
from rq.registry import ScheduledJobRegistry

from bot import jobs, keys, reconcile, runtime
from bot.settings import SettingsError, parse_settings
from tests import twilio_mock
from tests.conftest import QuietWorker, always_open, post_twilio, run_jobs, sms
from tests.test_metrics import scrape
from tests.twilio_mock import SERVICE, media_url

CUSTOMER = "+15551230001"
OTHERS = ("+15551230002", "+15551230003")


def ago(minutes: float) -> datetime:
    return datetime.now(timezone.utc) - timedelta(minutes=minutes)


def reconcile_via_worker(conn, due: int | None = None) -> str:
    """One scheduled run, as RQ's scheduler starts it, through a real worker; then the
    intake jobs it caused. (The next slot it schedules is left scheduled, even if it
    falls due meanwhile: the tests of the chain run it on purpose.)"""
    queue = Queue("hotline", connection=conn)
    job = queue.enqueue(jobs.reconcile_slot, due or int(datetime.now(timezone.utc).timestamp() * 1000))
    QuietWorker([queue], connection=conn).work(burst=True)
    run_jobs(conn)  # what it caused, on the urgent queue too (a new ticket's first reply)
    return Job.fetch(job.id, connection=conn).return_value()


def run_next_slot(conn) -> list[str]:
    """Stand in for the clock: make the scheduled reconciliation due now, run it (and only
    it: it schedules the one after), then the jobs it caused. Returns its results."""
    queue = Queue("hotline", connection=conn)
    registry = ScheduledJobRegistry(queue=queue)
    slot_jobs = [j for j in registry.get_job_ids() if j.startswith("hotline-reconcile-")]
    for job_id in slot_jobs:
        registry.remove(job_id)
        queue.enqueue_job(Job.fetch(job_id, connection=conn))
    run_jobs(conn)
    return [Job.fetch(j, connection=conn).return_value() for j in slot_jobs]


def reconcile_jobs(conn) -> list[str]:
    registry = ScheduledJobRegistry(queue=Queue("hotline", connection=conn))
    return [j for j in registry.get_job_ids() if j.startswith("hotline-reconcile-")]


def list_query(read: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(read).query).items()}


def recovered_notes(zendesk, ticket_id) -> list[str]:
    return [n for n in zendesk.notes(ticket_id) if n.startswith("Recovered from Twilio")]


# -- the scenarios the issue names ---------------------------------------------------

def test_a_text_never_webhooked_is_recovered_once_with_a_note_and_no_customer_words(
        client, conn, open_rt, zendesk, twilio):
    sent_at = ago(7)
    sid = twilio.inbound(CUSTOMER, "my dog was hit by a car", sent_at=sent_at)

    assert reconcile_via_worker(conn) == "recovered 1"
    # Counted as the event its webhook would have been.
    assert scrape(client)[("hotline_events_total", (("outcome", "accepted"), ("source", "sms")))] == 1

    [ticket] = zendesk.all("ticket")
    assert zendesk.texts(ticket["id"]) == ["my dog was hit by a car"]
    [note] = recovered_notes(zendesk, ticket["id"])
    sent = sent_at.strftime("%H:%M")  # the team's zone is UTC here
    assert re.fullmatch(rf"Recovered from Twilio: sent {sent}, reached Hotline \d\d:\d\d \(UTC, UTC\)\..*",
                        note)
    assert "dog" not in note
    assert conn.exists(keys.seen(f"twilio:sms:{sid}"))
    # The emergency reply went out as for any text; once.
    assert len([m for m in twilio.sent() if m["to"] == CUSTOMER]) == 1

    writes = zendesk.ticket_writes()
    assert reconcile_via_worker(conn) == "recovered 0"  # the next run sees it claimed
    assert zendesk.ticket_writes() == writes
    assert len(zendesk.all("ticket")) == 1


def test_a_webhooked_text_is_not_written_again(client, conn, open_rt, zendesk, twilio):
    form = sms(CUSTOMER, "my cat is not eating")
    assert post_twilio(client, "/twilio/sms", form).status_code == 200
    run_jobs(conn)
    twilio.inbound(CUSTOMER, "my cat is not eating", sent_at=ago(1), sid=form["MessageSid"])
    writes = zendesk.ticket_writes()

    assert reconcile_via_worker(conn) == "recovered 0"

    [ticket] = zendesk.all("ticket")
    assert zendesk.texts(ticket["id"]) == ["my cat is not eating"]
    assert zendesk.ticket_writes() == writes
    assert recovered_notes(zendesk, ticket["id"]) == []


@pytest.mark.parametrize("when", ["while listing", "after the claim check"])
def test_a_text_whose_webhook_arrives_while_reconciliation_runs_is_written_once(
        client, conn, open_rt, zendesk, twilio, mocked, monkeypatch, when):
    """The webhook lands after Twilio listed the text (before Hotline looked at its claim,
    or between that look and the intake): one comment either way."""
    media = media_url("MM" + "9" * 32, "ME" + "9" * 32)
    sid = twilio.inbound(CUSTOMER, "photo of the bite", sent_at=ago(3), media=("image/jpeg",),
                         sid="MM" + "9" * 32)
    twilio.add_media(media, rsps=mocked)
    form = sms(CUSTOMER, "photo of the bite", sid=sid, NumMedia="1", MediaUrl0=media,
               MediaContentType0="image/jpeg")
    phone = open_rt.phone
    if when == "while listing":
        listed = phone.inbound_messages

        def racing(to, since):
            for fields in listed(to, since):
                assert post_twilio(client, "/twilio/sms", form).status_code == 200
                yield fields
        monkeypatch.setattr(phone, "inbound_messages", racing)
    else:
        media_of = phone.message_media

        def racing(message_sid):
            assert post_twilio(client, "/twilio/sms", form).status_code == 200
            return media_of(message_sid)
        monkeypatch.setattr(phone, "message_media", racing)

    report = reconcile.run(open_rt)
    run_jobs(conn)

    [ticket] = zendesk.all("ticket")
    assert zendesk.texts(ticket["id"]) == ["photo of the bite"]
    assert len(zendesk.public(ticket["id"])[0]["attachments"]) == 1
    assert report.taken_in == []
    assert len(twilio.media_requests()) == 1
    assert recovered_notes(zendesk, ticket["id"]) == []


def test_an_outage_of_the_web_tier_during_a_burst_loses_nothing_and_keeps_twilios_order(
        client, conn, open_rt, zendesk, twilio, mocked, monkeypatch):
    # Before the outage: each customer's first text reached Hotline.
    for n, number in enumerate((CUSTOMER, *OTHERS)):
        form = sms(number, f"first from {n}")
        post_twilio(client, "/twilio/sms", form)
        twilio.inbound(number, f"first from {n}", sent_at=ago(30), sid=form["MessageSid"])
    run_jobs(conn)
    # The web tier is down: 24 texts reach Twilio only, interleaved across the three.
    start = ago(20)
    for i in range(24):
        number = (CUSTOMER, *OTHERS)[i % 3]
        twilio.inbound(number, f"burst {i:02d}", sent_at=start + timedelta(seconds=20 * (i // 2)))
    # An MMS among them, whose media is fetched like a webhooked one.
    mms = twilio.inbound(CUSTOMER, "the wound", sent_at=start + timedelta(minutes=9),
                         media=("image/jpeg",))
    twilio.add_media(media_url(mms, f"ME{mms[2:-2]}00"), rsps=mocked)
    monkeypatch.setattr(open_rt.phone, "LIST_PAGE_SIZE", 10)  # several pages

    assert reconcile_via_worker(conn) == "recovered 25"

    tickets = {t["requester_id"]: t for t in zendesk.all("ticket")}
    assert len(tickets) == 3
    for n, number in enumerate((CUSTOMER, *OTHERS)):
        [user] = [u for u in zendesk.all("user") if u["phone"] == number]
        texts = "\n".join(zendesk.texts(tickets[user["id"]]["id"]))
        bursts = re.findall(r"burst \d\d", texts)
        assert bursts == [f"burst {i:02d}" for i in range(24) if i % 3 == n]  # Twilio's order
        assert texts.startswith(f"first from {n}")
    customer_ticket = tickets[[u for u in zendesk.all("user") if u["phone"] == CUSTOMER][0]["id"]]
    assert any(c["attachments"] for c in zendesk.public(customer_ticket["id"]))
    # Paged with PageSize and the PageToken of each next_page_uri.
    pages = [list_query(r) for r in twilio.reads() if "/Messages.json" in r]
    assert [p.get("Page", "0") for p in pages] == ["0", "1", "2"]
    assert all(p["PageSize"] == "10" for p in pages) and pages[1]["PageToken"].startswith("PA")


def test_the_high_water_mark_survives_a_worker_restart(conn, config, open_rt, zendesk, twilio,
                                                       tmp_path, monkeypatch):
    reconcile_via_worker(conn)
    first = list_query(twilio.reads()[0])
    since = datetime.strptime(first["DateSent>"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert abs((datetime.now(timezone.utc) - since) - timedelta(hours=24)) < timedelta(seconds=5)
    mark = float(conn.get(keys.RECONCILE_MARK))

    # A new worker process: nothing in memory survives, the mark is in Redis.
    restarted = runtime.build(always_open(config, tmp_path))
    monkeypatch.setattr(runtime, "get", lambda: restarted)
    twilio.inbound(CUSTOMER, "are you there?", sent_at=ago(1))
    assert reconcile_via_worker(conn) == "recovered 1"

    second = [list_query(r) for r in twilio.reads() if "/Messages.json" in r][-1]
    expected = datetime.fromtimestamp(mark - 120, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert second["DateSent>"] == expected
    assert float(conn.get(keys.RECONCILE_MARK)) > mark


@pytest.mark.parametrize("status", [503, 429, "ReadTimeout"])
def test_a_twilio_outage_makes_the_run_retry_later_and_never_stops_the_schedule(
        conn, open_rt, zendesk, twilio, status):
    twilio.inbound(CUSTOMER, "hello?", sent_at=ago(4))
    if status == "ReadTimeout":
        twilio.fail_next_list(0, exception=status)
    else:
        twilio.fail_next_list(status, retry_after=30 if status == 429 else None)

    assert reconcile_via_worker(conn) == "retry-later"
    assert zendesk.all("ticket") == []
    assert conn.get(keys.RECONCILE_MARK) is None  # the failed window is listed again
    assert len(reconcile_jobs(conn)) == 1         # the next slot is scheduled

    assert run_next_slot(conn) == ["recovered 1"]
    [ticket] = zendesk.all("ticket")
    assert zendesk.texts(ticket["id"]) == ["hello?"]
    assert len(reconcile_jobs(conn)) == 1         # and the one after


def test_wrong_credentials_fail_the_job_visibly_and_the_next_slot_tries_again(
        app, conn, open_rt, zendesk, twilio, monkeypatch):
    from rq.registry import FailedJobRegistry

    twilio.fail_next_list(401)
    queue = Queue("hotline", connection=conn)
    job = queue.enqueue(jobs.reconcile_slot, int(datetime.now(timezone.utc).timestamp() * 1000))
    QuietWorker([queue], connection=conn).work(burst=True)

    assert job.id in FailedJobRegistry(queue=queue).get_job_ids()
    assert "twilio message list 401" in app.test_cli_runner().invoke(
        args=["hotline", "failed", "list"]).output
    assert len(reconcile_jobs(conn)) == 1  # the chain goes on
    monkeypatch.setattr(runtime, "build", lambda config=None: open_rt)
    twilio.fail_next_list(401)
    refused = app.test_cli_runner().invoke(args=["hotline", "reconcile"])
    assert refused.exit_code == 1 and "check TWILIO_ACCOUNT_SID" in refused.output


def test_exactly_one_runner_per_slot_whoever_asks_and_across_a_redeploy(conn, open_rt, twilio):
    settings = open_rt.settings
    interval = settings.reconcile_minutes * 60
    now = datetime.now(timezone.utc).timestamp()
    now -= max(0.0, now % interval - (interval - 5))  # the redeploy's ask a second later: same slot
    # Three web processes' maintenance passes and a worker ask at once: one job.
    asked = [jobs.schedule_reconcile(conn, "hotline", settings, now) for _ in range(4)]
    assert len([a for a in asked if a]) == 1
    assert len(reconcile_jobs(conn)) == 1
    # A redeploy: new processes ask again for the same slot; still one.
    assert jobs.schedule_reconcile(conn, "hotline", settings, now + 1) is None
    assert len(reconcile_jobs(conn)) == 1

    # The slot's job delivered twice (a requeue) runs once.
    [due] = [a for a in asked if a]
    assert reconcile_via_worker(conn, due) == "recovered 0"
    assert reconcile_via_worker(conn, due) == "already-ran"
    # Slots that piled up while no worker ran (the web tier asked every pass): the first
    # lists everything, the others find their time covered.
    conn.delete(keys.RECONCILE_MARK)
    for job_id in reconcile_jobs(conn):
        ScheduledJobRegistry(queue=Queue("hotline", connection=conn)).remove(job_id)
    for minutes_ago in (15, 10, 5):
        jobs.schedule_reconcile(conn, "hotline", settings, now - minutes_ago * 60)
    assert sorted(run_next_slot(conn)) == ["covered", "covered", "recovered 0"]
    assert len([r for r in twilio.reads() if "/Messages.json" in r]) == 2  # one run listed
    # A run by hand while the scheduled one holds the lock waits its turn.
    conn.set(keys.RECONCILE_LOCK, "someone", ex=60)
    with pytest.raises(reconcile.Busy):
        reconcile.run(open_rt)
    assert reconcile_via_worker(conn) == "busy"


def test_a_recovered_missed_call_becomes_the_missed_call_ticket_and_text(
        client, conn, open_rt, zendesk, twilio):
    twilio.inbound_call(CUSTOMER, started=ago(6), status="no-answer", duration=0)
    # A call Hotline handled itself (its state is in Redis) is left alone.
    seen = twilio.inbound_call(OTHERS[0], started=ago(5), status="completed", duration=40)
    conn.hset(keys.call(seen), mapping={"caller": OTHERS[0], "recorded": "1"})
    # A call still ringing is taken in by a later run, once it is over.
    ringing = twilio.inbound_call(OTHERS[1], started=ago(3), status="ringing", duration=0)

    assert reconcile_via_worker(conn) == "recovered 1"

    [ticket] = zendesk.all("ticket")
    [comment] = zendesk.public(ticket["id"])
    assert comment["body"].startswith("Missed call (nobody answered, 0 s)")
    [note] = recovered_notes(zendesk, ticket["id"])
    assert note.startswith("Recovered from Twilio: called ")
    [text] = twilio.sent()
    assert text["to"] == CUSTOMER and "missed" in text["body"].lower()
    assert float(conn.get(keys.RECONCILE_MARK)) <= ago(3).timestamp() + 1  # held at the ringing call

    # The ringing call ended unanswered: the next run takes it in.
    for raw in conn.zrange(twilio_mock.P + "calls", 0, -1):
        if json.loads(raw)["sid"] == ringing:
            conn.zrem(twilio_mock.P + "calls", raw)
    twilio.inbound_call(OTHERS[1], started=ago(3), status="no-answer", duration=0, sid=ringing)
    next_slot = int((datetime.now(timezone.utc) + timedelta(minutes=10)).timestamp() * 1000)
    assert reconcile_via_worker(conn, next_slot) == "recovered 1"
    assert len(zendesk.all("ticket")) == 2 and [m["to"] for m in twilio.sent()][-1] == OTHERS[1]


# -- by hand, local mode, settings ------------------------------------------------------

def test_reconcile_by_hand_prints_counts_masked_numbers_and_sids_never_text(
        app, conn, open_rt, zendesk, twilio, monkeypatch):
    monkeypatch.setattr(runtime, "build", lambda config=None: open_rt)
    sid = twilio.inbound(CUSTOMER, "my dog ate chocolate", sent_at=ago(90))
    twilio.inbound(CUSTOMER, "yesterday's", sent_at=ago(60 * 5))  # outside --since 2h

    result = app.test_cli_runner().invoke(args=["hotline", "reconcile", "--since", "2h"])

    assert result.exit_code == 0, result.output
    assert f"recovered text {sid} from +1 ••• ••• 0001" in result.output
    assert "listed 1 text(s) and 0 call(s) to +1 ••• ••• 0006" in result.output
    assert result.output.strip().endswith("recovered 1")
    assert "chocolate" not in result.output and CUSTOMER not in result.output
    run_jobs(conn)
    [ticket] = zendesk.all("ticket")
    assert zendesk.texts(ticket["id"]) == ["my dog ate chocolate"]

    bad = app.test_cli_runner().invoke(args=["hotline", "reconcile", "--since", "soon"])
    assert bad.exit_code != 0 and "not a duration" in bad.output
    old = app.test_cli_runner().invoke(args=["hotline", "reconcile", "--since", "30d"])
    assert old.exit_code != 0 and "limited to" in old.output


def test_reconcile_by_hand_says_when_twilio_is_down(app, conn, open_rt, twilio, monkeypatch):
    monkeypatch.setattr(runtime, "build", lambda config=None: open_rt)
    twilio.fail_next_list(503)
    result = app.test_cli_runner().invoke(args=["hotline", "reconcile"])
    assert result.exit_code == 1 and "Twilio did not answer" in result.output


def test_a_messaging_service_is_reconciled_on_each_number_of_its_pool(
        config, conn, tmp_path, zendesk, twilio, monkeypatch):
    cfg = dataclasses.replace(always_open(config, tmp_path), twilio_from_number="",
                              twilio_messaging_service_sid=SERVICE)
    built = runtime.build(cfg)
    monkeypatch.setattr(runtime, "get", lambda: built)
    twilio.add_service_numbers("+15005550010", "+15005550011")
    twilio.inbound(CUSTOMER, "to the second number", sent_at=ago(2), to="+15005550011")

    assert reconcile_via_worker(conn) == "recovered 1"
    tos = [list_query(r).get("To") for r in twilio.reads() if "/Messages.json" in r]
    assert tos == ["+15005550010", "+15005550011"]


def test_local_mode_has_nothing_to_list(tmp_path, conn, config, monkeypatch):
    from web import create_app

    local = dataclasses.replace(config, local_mode=True, twilio_account_sid="",
                                twilio_from_number="", zendesk_subdomain="")
    built = runtime.build(local)
    monkeypatch.setattr(runtime, "get", lambda: built)
    assert reconcile_via_worker(conn) == "skipped"
    assert conn.get(keys.RECONCILE_MARK) is None
    result = create_app(local, maintenance=False).test_cli_runner().invoke(
        args=["hotline", "reconcile", "--since", "2h"])
    assert result.exit_code == 0
    assert "nothing to reconcile: local mode" in result.output


def test_settings_keys_fractions_and_the_two_minute_overlap_floor():
    s = parse_settings({"reconcile_minutes": 0.05, "reconcile_lookback_hours": 1.5})
    assert (s.reconcile_minutes, s.reconcile_lookback_hours, s.reconcile_overlap_minutes) == \
        (0.05, 1.5, 2)
    assert parse_settings({}).reconcile_minutes == 5
    assert parse_settings({}).reconcile_lookback_hours == 24
    with pytest.raises(SettingsError, match="reconcile_overlap_minutes: at least 2"):
        parse_settings({"reconcile_overlap_minutes": 1})
    with pytest.raises(SettingsError, match="reconcile_minutes: 'often' is not a number"):
        parse_settings({"reconcile_minutes": "often"})


def test_recovered_events_take_twilios_order_even_within_one_second():
    from bot.events import InboundMessage

    t = 1_790_000_000.0
    events = [reconcile._mark(InboundMessage(provider_id=f"SM{i}", sender=CUSTOMER), ts, t + 60)
              for i, ts in enumerate((t + 5, t, t, t + 1))]
    ordered = reconcile.in_twilio_order(events)
    assert [e.provider_id for e in ordered] == ["SM1", "SM2", "SM3", "SM0"]
    stamps = [e.received_at for e in ordered]
    assert stamps == sorted(stamps) and len(set(stamps)) == 4


def test_the_note_names_the_zone_and_the_day_when_it_is_not_today():
    settings = parse_settings({"timezone": "America/Los_Angeles"})
    at = datetime(2026, 11, 30, 22, 9, tzinfo=timezone.utc).timestamp()   # 14:09 PST
    text = reconcile.note(settings, channel="sms", sent_at=at - 7 * 60, recovered_at=at)
    assert text.startswith("Recovered from Twilio: sent 14:02, reached Hotline 14:09 "
                           "(PST, America/Los_Angeles).")
    older = reconcile.note(settings, channel="sms", sent_at=at - 86400, recovered_at=at)
    assert "sent Nov 29 14:09," in older


def test_the_window_the_mark_the_lookback_and_the_claims_lifetime():
    settings = parse_settings({"reconcile_lookback_hours": 24})
    now = 1_790_000_000.0
    assert reconcile.window_start(None, now, settings) == now - 24 * 3600
    assert reconcile.window_start(now - 300, now, settings) == now - 300 - 120
    assert reconcile.window_start(now - 300, now, settings, since_seconds=7200) == now - 7200
    # A mark from before a long stop: no further back than the once-only claims live.
    assert reconcile.window_start(now - 30 * 86400, now, settings) == now - reconcile.MAX_SINCE_SECONDS


def test_rqs_own_scheduler_runs_the_chain_across_a_worker_restart(conn, config, tmp_path,
                                                                  zendesk, twilio, monkeypatch):
    """No stand-in for the clock: slots of 0.6 s, run by `rq worker --with-scheduler`'s own
    scheduler (burst mode), a fresh worker and runtime for each slot."""
    import time

    from tests.conftest import wait_for

    cfg = always_open(config, tmp_path)
    cfg.settings_path.write_text(cfg.settings_path.read_text() + "reconcile_minutes: 0.01\n")
    queue = Queue("hotline", connection=conn)
    first = None
    for n, body in enumerate(("first slot", "second slot")):
        built = runtime.build(cfg)  # a new worker process: nothing carried in memory
        monkeypatch.setattr(runtime, "get", lambda: built)
        if first is None:
            first = jobs.schedule_reconcile(conn, "hotline", built.settings)  # a web process asks
        [job_id] = reconcile_jobs(conn)
        twilio.inbound(CUSTOMER, body, sent_at=ago(1))
        due = ScheduledJobRegistry(queue=queue).get_scheduled_time(job_id).timestamp()
        wait_for(lambda: time.time() > due + 0.01, timeout=5, what="the slot to be due")
        QuietWorker([queue], connection=conn).work(burst=True, with_scheduler=True)
        run_jobs(conn)
        assert Job.fetch(job_id, connection=conn).return_value() == "recovered 1"
    [ticket] = zendesk.all("ticket")
    assert "\n".join(zendesk.texts(ticket["id"])).count("slot") == 2
    assert len(reconcile_jobs(conn)) == 1  # the chain goes on
