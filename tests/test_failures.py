"""Zendesk and Twilio failing: retried when transient, never lost, never doubled,
recorded where an agent sees it when permanent."""
import pytest
from rq import Queue

from bot import keys, ratelimit, runtime
from tests.conftest import run_jobs, scheduled_in
from tests.test_conversation_e2e import CUSTOMER, text


@pytest.fixture(autouse=True)
def open_hours(open_rt):
    return open_rt


def test_429_reschedules_for_retry_after_without_holding_the_worker(client, conn, zendesk, twilio):
    zendesk.fail_next("POST", r"/tickets\.json", 429, headers={"Retry-After": "45"})
    text(client, "my cat ate chocolate")

    run_jobs(conn)  # runs what is due now; the retry is not due yet

    assert zendesk.all("ticket") == []
    [due] = scheduled_in(conn)
    assert 40 <= due <= 46  # when Zendesk said, not a blind back-off
    assert zendesk.calls().count("POST /tickets") == 1  # zenpy did not sleep and retry inline
    assert 40_000 <= conn.pttl(ratelimit.PAUSE) <= 45_000  # every worker waits as long

    conn.delete(ratelimit.PAUSE)
    run_jobs(conn, future=True)  # the clock reaches Retry-After
    [ticket] = zendesk.all("ticket")
    assert zendesk.texts(ticket["id"]) == ["my cat ate chocolate"]


@pytest.mark.parametrize("failure", [dict(status=503), dict(status=500), dict(exception="ConnectTimeout")])
def test_5xx_or_unreachable_is_retried_with_back_off_and_written_once(client, conn, zendesk, twilio, failure):
    zendesk.fail_next("POST", r"/tickets\.json", times=2, **failure)
    text(client, "sitter never showed up")

    run_jobs(conn)
    assert zendesk.all("ticket") == []
    assert 0 < scheduled_in(conn)[0] <= 3  # first back-off step

    run_jobs(conn, future=True)
    [ticket] = zendesk.all("ticket")
    assert len(zendesk.texts(ticket["id"])) == 1
    assert zendesk.calls().count("POST /tickets") == 3


def test_timeout_after_zendesk_created_the_ticket_does_not_create_it_twice(client, conn, zendesk, twilio):
    zendesk.fail_next("POST", r"/tickets\.json", exception="ReadTimeout", apply_first=True)
    text(client, "my dog was bitten")

    run_jobs(conn, future=True)

    [ticket] = zendesk.all("ticket")  # created once, found again by external_id
    assert ticket["external_id"].startswith("hotline-")
    assert "GET /tickets" in zendesk.calls()
    assert len(zendesk.texts(ticket["id"])) == 1
    conv = conn.hget(keys.CONV_IDS, f"phone:{CUSTOMER}").decode()
    assert conn.hget(keys.conversation(conv), "ticket_id").decode() == str(ticket["id"])
    assert len(twilio.sent()) == 1


def test_timeout_after_zendesk_added_the_comment_does_not_add_it_twice(client, conn, zendesk, twilio):
    text(client, "first")
    run_jobs(conn)
    zendesk.fail_next("PUT", r"/tickets/\d+\.json", exception="ReadTimeout", apply_first=True)

    text(client, "second")
    run_jobs(conn, future=True)

    [ticket] = zendesk.all("ticket")
    assert zendesk.texts(ticket["id"]) == ["first", "second"]
    assert "GET /tickets/{id}/audits" in zendesk.calls()
    assert conn.zcard(keys.PENDING_INDEX) == 0


def test_timeout_before_zendesk_wrote_anything_writes_it_after_checking(client, conn, zendesk, twilio):
    text(client, "first")
    run_jobs(conn)
    zendesk.fail_next("PUT", r"/tickets/\d+\.json", exception="ReadTimeout")

    text(client, "second")
    run_jobs(conn, future=True)

    [ticket] = zendesk.all("ticket")
    assert zendesk.texts(ticket["id"]) == ["first", "second"]


def test_permanent_refusal_sets_messages_aside_and_tells_the_agent(client, conn, zendesk, twilio, app):
    text(client, "first")
    run_jobs(conn)
    zendesk.fail_next("PUT", r"/tickets/\d+\.json", 422,
                      body={"error": "RecordInvalid", "description": "Record validation errors",
                            "details": {"base": [{"description": "Comment body too long"}]}})

    text(client, "second")
    run_jobs(conn, future=True)

    [ticket] = zendesk.all("ticket")
    comments = zendesk.comments(ticket["id"])
    assert [c["body"] for c in comments if c["public"]] == ["first"]
    [note] = [{"body": b} for b in zendesk.notes(ticket["id"])]
    assert "could not add 1 message" in note["body"] and "flask hotline failed requeue" in note["body"]
    assert scheduled_in(conn) == []  # not retried
    conv = conn.hget(keys.CONV_IDS, f"phone:{CUSTOMER}").decode()
    assert conn.zcard(keys.dead(conv)) == 1  # kept

    # The operator replays it once Zendesk accepts it.
    runner = app.test_cli_runner()
    listed = runner.invoke(args=["hotline", "failed", "list"])
    assert f"conversation {conv}: 1 event(s) set aside" in listed.output
    assert runner.invoke(args=["hotline", "failed", "requeue"]).exit_code == 0
    run_jobs(conn)
    assert [c["body"] for c in zendesk.comments(ticket["id"]) if c["public"]] == ["first", "second"]


def test_later_texts_still_flow_after_one_is_set_aside(client, conn, zendesk, twilio):
    text(client, "first")
    run_jobs(conn)
    zendesk.fail_next("PUT", r"/tickets/\d+\.json", 422,
                      body={"error": "RecordInvalid", "description": "nope"})
    text(client, "refused")
    run_jobs(conn)
    text(client, "third")
    run_jobs(conn)

    bodies = [c["body"] for c in zendesk.comments(zendesk.all("ticket")[0]["id"]) if c["public"]]
    assert bodies == ["first", "third"]


def test_a_requester_create_whose_answer_was_lost_makes_one_user(client, conn, zendesk, twilio):
    zendesk.fail_next("POST", r"/users/create_or_update\.json", exception="ReadTimeout", apply_first=True)
    text(client, "hello there")

    run_jobs(conn, future=True)  # tried again: search does not see the user yet (it lags)

    assert zendesk.calls().count("POST /users/create_or_update") == 2
    [user] = zendesk.all("user")  # the second create found the first by its external id
    [ticket] = zendesk.all("ticket")
    assert ticket["requester_id"] == user["id"] and user["external_id"].startswith("hotline-phone-")
    assert "5551230001" not in user["external_id"]


def test_acknowledgement_retried_on_twilio_5xx_and_sent_once(client, conn, zendesk, twilio):
    twilio.fail_next_send(503, 20500, "Service unavailable")
    text(client, "please help me")

    run_jobs(conn, future=True)

    assert len(twilio.sent()) == 1


def test_acknowledgement_to_invalid_number_is_noted_on_the_ticket(client, conn, zendesk, twilio):
    twilio.fail_next_send(400, 21211, "The 'To' number is not a valid phone number.")
    text(client, "please help me")

    run_jobs(conn, future=True)

    assert twilio.sent() == []
    [ticket] = zendesk.all("ticket")
    # It failed before the ticket existed: the new ticket's summary note says so, once.
    [note] = [c["body"] for c in zendesk.comments(ticket["id"]) if not c["public"]]
    assert note.count("could not send the automatic reply") == 1 and "21211" in note
    assert scheduled_in(conn) == []


def test_acknowledgement_with_unknown_outcome_is_not_sent_again(client, conn, zendesk, twilio):
    twilio.fail_next_send(0, 0, exception="ReadTimeout")
    text(client, "please help me")

    run_jobs(conn, future=True)

    assert twilio.sent() == []  # the mock saw one attempt and never a second
    assert scheduled_in(conn) == [] and len(Queue("hotline", connection=conn)) == 0
    [note] = [c["body"] for c in zendesk.comments(zendesk.all("ticket")[0]["id"]) if not c["public"]]
    assert note.count("may not have sent") == 1


def test_zendesk_budget_shared_by_workers_defers_instead_of_calling(client, conn, config, tmp_path,
                                                                    zendesk, twilio, monkeypatch):
    limited = tmp_path / "limited.yaml"
    limited.write_text("timezone: UTC\nzendesk:\n  requests_per_minute: 2\n")
    import dataclasses

    built = runtime.build(dataclasses.replace(config, settings_path=limited))
    monkeypatch.setattr(runtime, "get", lambda: built)
    text(client, "hello")

    run_jobs(conn)

    assert zendesk.calls() == ["GET /search", "POST /users/create_or_update"]  # the third call waits
    [due] = scheduled_in(conn)
    assert 0 < due <= 60
    conn.delete(*conn.keys("hotline:zendesk-budget:*"))  # the next minute
    run_jobs(conn, future=True)
    assert len(zendesk.all("ticket")) == 1 and len(zendesk.all("user")) == 1


def test_job_failing_past_its_budget_is_listed_and_replayable(client, conn, zendesk, twilio, app):
    from bot.jobs import BACKOFF

    zendesk.fail_next("GET", r"/search\.json", 503, times=len(BACKOFF) + 1)
    text(client, "zendesk is down")

    run_jobs(conn, future=True)

    runner = app.test_cli_runner()
    listed = runner.invoke(args=["hotline", "failed", "list"]).output
    assert "process_conversation" in listed and "zendesk 503" in listed
    assert runner.invoke(args=["hotline", "failed", "requeue"]).output.startswith("requeued 1 job")
    run_jobs(conn)
    assert len(zendesk.all("ticket")) == 1


def test_deleted_ticket_starts_the_conversation_afresh(client, conn, zendesk, twilio):
    text(client, "first")
    run_jobs(conn)
    [first] = zendesk.all("ticket")
    conn.hdel("zdmock:ticket", str(first["id"]))  # an agent deleted it

    text(client, "second")
    run_jobs(conn)

    [second] = zendesk.all("ticket")
    assert second["id"] != first["id"] and zendesk.texts(second["id"]) == ["second"]
    conv = conn.hget(keys.CONV_IDS, f"phone:{CUSTOMER}").decode()
    assert conn.zcard(keys.dead(conv)) == 0


def test_502_after_zendesk_created_the_ticket_does_not_create_it_twice(client, conn, zendesk, twilio):
    zendesk.fail_next("POST", r"/tickets\.json", 502, apply_first=True)
    text(client, "bitten by the neighbour's dog")
    run_jobs(conn, future=True)
    assert len(zendesk.all("ticket")) == 1


def test_no_write_when_the_conversation_lock_was_lost(client, conn, zendesk, twilio, open_hours):
    from bot import conversations

    text(client, "slow one")
    conv = conn.hget(keys.CONV_IDS, f"phone:{CUSTOMER}").decode()
    lock = conversations.Lock(conn, keys.lock(conv))
    assert lock.acquire()
    conn.set(keys.lock(conv), "another-worker")  # expired and taken meanwhile

    with pytest.raises(conversations.LockLost):
        conversations.write_batch(open_hours, conv, conversations.load_pending(conn, conv), lock)
    assert "POST /tickets" not in zendesk.calls()
    assert conn.zcard(keys.pending(conv)) == 1
