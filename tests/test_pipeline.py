"""The job pipeline under load (SPEC 12, issue 10): one queued job per conversation,
urgent first, a killed worker's conversation recovered in seconds, Zendesk's 429 shared.

Real RQ workers (in this process, or forked like the Procfile's) against the
tests' private Redis; Zendesk and Twilio over `responses`.
"""
import dataclasses
import multiprocessing
import os
import signal
import time

from rq import Queue

from bot import conversations, intake, keys, ratelimit, runtime
from tests.conftest import (QUEUES, post_twilio, run_jobs, scheduled_in, shipped_runtime, sms, wait_for,
                            worker_process)
from tests.test_conversation_e2e import CUSTOMER, text
from tests.twilio_mock import TwilioMock

ON_CALL = "+15005550009"


def conv_of(conn, phone: str = CUSTOMER) -> str:
    return conn.hget(keys.CONV_IDS, f"phone:{phone}").decode()


def queued(conn) -> dict[str, int]:
    return {q: conn.llen(f"rq:queue:{q}") for q in QUEUES}


# -- one job per conversation ------------------------------------------------------

def test_a_burst_queues_one_job_and_is_written_as_one_comment(client, conn, open_rt, zendesk, twilio):
    for i in range(5):
        text(client, f"part {i} of my question")

    # One job for the burst: a new conversation's, on the replies queue (it answers first).
    assert queued(conn) == {"hotline-urgent": 0, "hotline-replies": 1, "hotline": 0}
    run_jobs(conn)

    assert len(twilio.sent()) == 1
    [ticket] = zendesk.all("ticket")
    [comment] = zendesk.texts(ticket["id"])
    assert [f"part {i}" in comment for i in range(5)] == [True] * 5
    assert conn.zcard(keys.pending(conv_of(conn))) == 0 and not conn.exists(keys.queued(conv_of(conn)))


def test_a_text_arriving_while_the_job_writes_is_never_stranded(client, conn, open_rt, zendesk, twilio,
                                                                 monkeypatch):
    write = conversations.write_batch
    arrived = []

    def write_and_receive(rt, conv_id, batch, lock=None):
        if not arrived:  # the customer texts again while the first write is in flight
            arrived.append(text(client, "and another thing"))
        return write(rt, conv_id, batch, lock)

    monkeypatch.setattr(conversations, "write_batch", write_and_receive)
    text(client, "first thing")
    run_jobs(conn)

    [ticket] = zendesk.all("ticket")
    assert zendesk.texts(ticket["id"]) == ["first thing", "and another thing"]
    assert conn.zcard(keys.PENDING_INDEX) == 0 and not conn.exists(keys.queued(conv_of(conn)))


def test_a_burst_still_arriving_is_scheduled_for_when_it_goes_quiet(client, conn, config, tmp_path,
                                                                     zendesk, twilio, monkeypatch):
    path = tmp_path / "burst.yaml"
    path.write_text("conversations:\n  coalesce_quiet_ms: 5000\n  coalesce_max_ms: 20000\n")
    built = runtime.build(dataclasses.replace(config, settings_path=path))
    monkeypatch.setattr(runtime, "get", lambda: built)
    text(client, "one")
    text(client, "two")

    started = time.monotonic()
    run_jobs(conn)  # what is due now: the job sees the burst and schedules itself

    assert time.monotonic() - started < 1.0  # it did not sleep in the worker
    assert zendesk.calls() == []
    [due] = scheduled_in(conn)
    assert 2 <= due <= 6  # when the newest text is `coalesce_quiet_ms` old
    run_jobs(conn, future=True)
    [ticket] = zendesk.all("ticket")
    assert len(zendesk.texts(ticket["id"])) == 1  # one comment for the burst


# -- urgent first -----------------------------------------------------------------------

def test_an_emergency_behind_a_backlog_is_answered_and_alerted_first(client, conn, config, tmp_path,
                                                                      zendesk, twilio, monkeypatch):
    shipped_runtime(config, tmp_path, monkeypatch, on_call=[ON_CALL])
    for i in range(20):
        assert post_twilio(client, "/twilio/sms", sms(f"+1555300{i:04d}", "where is my order")).status_code == 200
    text(client, "my dog got hit by a car and is bleeding")

    assert queued(conn) == {"hotline-urgent": 1, "hotline-replies": 20, "hotline": 0}
    run_jobs(conn)

    sent = TwilioMock(conn).sent()
    assert len(sent) == 22  # 20 acknowledgements, the emergency reply, the alert
    assert {s["to"] for s in sent[:2]} == {CUSTOMER, ON_CALL}
    [ticket] = [t for t in zendesk.all("ticket") if t["priority"] == "urgent"]
    [summary] = [c["body"] for c in zendesk.comments(ticket["id"]) if not c["public"]]
    # The agent sees what the customer was told, in the note Hotline writes anyway.
    assert summary.startswith("Hotline triage: EMERGENCY")
    assert "Hotline texted the customer the automatic reply (emergency)" in summary
    assert [s["body"] for s in sent if s["to"] == CUSTOMER][0] in summary


def test_an_emergency_only_the_model_sees_is_written_from_the_urgent_queue(client, conn, config, tmp_path,
                                                                          zendesk, twilio, monkeypatch):
    shipped_runtime(config, tmp_path, monkeypatch, on_call=[ON_CALL])
    for i in range(5):  # a backlog on the ordinary queue
        assert post_twilio(client, "/twilio/sms", sms(f"+1555300{i:04d}", "where is my order")).status_code == 200
    run_jobs(conn, "hotline-replies")  # their acknowledgements; their writes now wait on `hotline`
    text(client, "rattler got him on the snout")  # no rule sees it; the model does
    assert queued(conn) == {"hotline-urgent": 0, "hotline-replies": 1, "hotline": 5}

    run_jobs(conn, "hotline-replies")
    assert queued(conn) == {"hotline-urgent": 1, "hotline-replies": 0, "hotline": 5}
    run_jobs(conn, "hotline-urgent")
    [ticket] = zendesk.all("ticket")  # written before the backlog
    assert ticket["priority"] == "urgent"
    sent = [s for s in TwilioMock(conn).sent() if s["to"] in (CUSTOMER, ON_CALL)]
    assert {s["to"] for s in sent} == {CUSTOMER, ON_CALL}
    assert f"#{ticket['id']}" in [s["body"] for s in sent if s["to"] == CUSTOMER][0]  # the advice


def test_an_emergency_takes_the_claim_from_a_waiting_ordinary_job(client, conn, rt, zendesk, twilio):
    text(client, "hello, a question about my booking")
    text(client, "actually my dog was bitten and is bleeding")

    assert queued(conn) == {"hotline-urgent": 1, "hotline-replies": 1, "hotline": 0}
    assert conn.get(keys.queued(conv_of(conn))).startswith(b"u-")
    run_jobs(conn)

    [ticket] = zendesk.all("ticket")
    assert ticket["priority"] == "urgent" and len(zendesk.texts(ticket["id"])) == 1


# -- a killed worker ----------------------------------------------------------------------

def test_a_worker_killed_mid_job_delays_its_conversation_by_seconds(client, conn, config, zendesk,
                                                                     twilio, redis_server, open_rt):
    ttl_ms = 1500
    zendesk.slow_down(60)  # the worker is inside a Zendesk call when it dies
    text(client, "my sitter never came")
    conv = conv_of(conn)
    proc = multiprocessing.get_context("fork").Process(
        target=worker_process, args=(redis_server.url, open_rt.config),
        kwargs=dict(lock_ttl_ms=ttl_ms, idle=5, scheduler=False))  # nothing of it outlives the kill
    proc.start()
    try:
        wait_for(lambda: conn.exists(keys.lock(conv)), what="the worker to take the conversation")
        taken = time.monotonic()
        # The heartbeat keeps a short lock for as long as the worker lives.
        wait_for(lambda: time.monotonic() - taken > 2 * ttl_ms / 1000 and conn.exists(keys.lock(conv)),
                 what="the lock to outlive its TTL while the worker works")
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(5)
        killed = time.monotonic()
        wait_for(lambda: not conn.exists(keys.lock(conv)), timeout=5, what="the lock to expire")
        assert time.monotonic() - killed <= ttl_ms / 1000 + 0.5
    finally:
        if proc.is_alive():
            proc.kill()
    conn.delete("zdmock:latency")

    assert intake.sweep_stale(conn, "hotline", older_than=0) == 1  # the web tier's sweep
    run_jobs(conn)
    [ticket] = zendesk.all("ticket")
    assert zendesk.texts(ticket["id"]) == ["my sitter never came"]


def test_the_sweep_recovers_a_job_lost_between_pop_and_start(client, conn, open_rt, zendesk, twilio):
    text(client, "a question about billing")
    conv = conv_of(conn)
    conn.delete("rq:queue:hotline-replies")  # popped by a worker that died before recording it

    assert intake.sweep_stale(conn, "hotline", older_than=0) == 1
    assert intake.sweep_stale(conn, "hotline", older_than=0) == 0  # its new job is waiting
    run_jobs(conn)
    assert zendesk.texts(zendesk.all("ticket")[0]["id"]) == ["a question about billing"]
    assert not conn.exists(keys.queued(conv))


# -- Zendesk's 429, shared --------------------------------------------------------------

def test_the_first_429_makes_every_job_wait_without_calling(client, conn, open_rt, zendesk, twilio):
    zendesk.fail_next("GET", r"/search\.json", 429, headers={"Retry-After": "30"})
    text(client, "first customer")
    assert post_twilio(client, "/twilio/sms", sms("+15557770999", "second customer")).status_code == 200

    run_jobs(conn)

    assert zendesk.calls() == ["GET /search"]  # the second job never called Zendesk
    due = sorted(scheduled_in(conn))
    assert len(due) == 2 and all(25 <= d <= 31 for d in due)
    conn.delete(ratelimit.PAUSE)  # the clock reaches Retry-After
    run_jobs(conn, future=True)
    assert len(zendesk.all("ticket")) == 2


def test_the_budget_follows_the_limit_zendesk_reports(client, conn, open_rt, zendesk, twilio):
    zendesk.limit(20)
    text(client, "hello")
    run_jobs(conn, future=True)

    assert int(conn.get(ratelimit.LIMIT)) == 20
    assert ratelimit.ZendeskGate(conn, 400).budget() == int(20 * ratelimit.SHARE)
    assert zendesk.rejected() == 0


def test_a_response_with_nothing_remaining_pauses_every_worker(conn):
    gate = ratelimit.ZendeskGate(conn, 400)
    gate.observe({"X-Rate-Limit": "700", "X-Rate-Limit-Remaining": "0", "ratelimit-reset": "12"})

    assert 11_000 <= conn.pttl(ratelimit.PAUSE) <= 12_000
    try:
        gate.take()
    except ratelimit.Throttled as exc:
        assert 11 <= exc.retry_after <= 12
    else:
        raise AssertionError("a paused gate let a call through")


def test_help_is_answered_on_the_ordinary_queue_whatever_triage_thinks(client, conn, rt, zendesk, twilio):
    text(client, "HELP")

    assert queued(conn) == {"hotline-urgent": 0, "hotline-replies": 0, "hotline": 1}


def test_a_text_queued_by_the_previous_version_is_still_sent_once(client, conn, open_rt, zendesk, twilio):
    text(client, "hello")
    run_jobs(conn)
    [ticket] = zendesk.all("ticket")
    before = len(twilio.sent())
    queue = Queue("hotline", connection=conn)
    for _ in range(2):  # the old job, delivered twice
        queue.enqueue("bot.jobs.send_template", conv_of(conn), ticket["id"], "sms/help", "help:old")

    run_jobs(conn)

    assert len(twilio.sent()) == before + 1
