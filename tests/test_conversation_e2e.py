"""A customer's texts becoming the right Zendesk ticket: webhook → Redis → real RQ worker →
real zenpy client → Zendesk API (mocked by `responses` in its real shapes)."""
import dataclasses
import json
from datetime import datetime, timedelta, timezone


from bot import keys, runtime
from tests.conftest import always_open, post_twilio, run_jobs, scheduled_in, shipped_runtime, sms
from tests.twilio_mock import JPEG, media_url

CUSTOMER = "+15551230001"


def known_conversation(conn, zendesk, status: str, hours_ago: float = 1):
    """A customer Hotline already knows, whose current ticket has `status`."""
    user = zendesk.add_user(CUSTOMER)
    ticket = zendesk.add_ticket(user["id"], status=status,
                                updated=datetime.now(timezone.utc) - timedelta(hours=hours_ago))
    conn.hset(keys.CONV_IDS, f"phone:{CUSTOMER}", "c1")
    conn.hset(keys.conversation("c1"), mapping={"user_id": user["id"], "ticket_id": ticket["id"]})
    return ticket


def text(client, body, sender=CUSTOMER, **extra):
    resp = post_twilio(client, "/twilio/sms", sms(sender, body, **extra))
    assert resp.status_code == 200
    return resp


def test_new_conversation_opens_one_ticket_in_three_zendesk_calls_plus_the_triage_note(
        client, conn, open_rt, zendesk, twilio):
    text(client, "my dog is hurt")
    run_jobs(conn)

    # Find the requester, create them, open the ticket; then the agent's summary note.
    assert zendesk.calls() == ["GET /search", "POST /users/create_or_update", "POST /tickets", "PUT /tickets/{id}"]
    [user] = zendesk.all("user")
    assert user["phone"] == CUSTOMER and user["name"] == "+1 555-123-0001"
    [ticket] = zendesk.all("ticket")
    assert ticket["requester_id"] == user["id"]
    assert set(ticket["tags"]) >= {"hotline", "sms"}
    assert ticket["subject"] == "Text message from San Bruno, CA, US"
    [comment] = zendesk.public(ticket["id"])
    assert comment["body"] == "my dog is hurt"
    assert comment["public"] is True and comment["author_id"] == user["id"]
    # The acknowledgement, once, went before the ticket existed (it names no case); the
    # summary note tells the agent what it said.
    [ack] = twilio.sent()
    assert ack["to"] == CUSTOMER and "specialist will text you back" in ack["body"]
    assert "#" not in ack["body"]
    [summary] = [c["body"] for c in zendesk.comments(ticket["id"]) if not c["public"]]
    assert summary.startswith("Hotline triage:")
    assert f"Hotline texted the customer the automatic reply (ack):\n{ack['body']}" in summary


def test_the_first_reply_does_not_wait_for_zendesk(client, conn, open_rt, zendesk, twilio):
    zendesk.fail_next("GET", r"/search", 503, times=3)
    text(client, "hello, question about my booking")
    run_jobs(conn)  # Zendesk answers 503: the write is retried later; the reply is not

    assert zendesk.all("ticket") == []
    [ack] = twilio.sent()
    assert ack["to"] == CUSTOMER and "specialist will text you back" in ack["body"]

    run_jobs(conn, future=True)  # Zendesk is back
    [ticket] = zendesk.all("ticket")
    assert len(twilio.sent()) == 1  # not acknowledged again with the ticket
    [summary] = [c["body"] for c in zendesk.comments(ticket["id"]) if not c["public"]]
    assert "Hotline texted the customer the automatic reply (ack)" in summary


def test_stop_waiting_beside_the_first_text_means_no_acknowledgement(client, conn, open_rt, zendesk, twilio):
    text(client, "hi, who is this")
    text(client, "STOP")
    run_jobs(conn)

    assert [m for m in twilio.sent() if "specialist" in m["body"]] == []
    assert conn.hexists(keys.OPTED_OUT, CUSTOMER)


def test_a_first_reply_undelivered_before_its_ticket_existed_is_in_the_summary(
        client, conn, open_rt, zendesk, twilio):
    from bot import delivery

    text(client, "hello, question about my booking")
    run_jobs(conn, "hotline-replies")  # the acknowledgement went; the write waits on `hotline`
    assert zendesk.all("ticket") == []
    [ack] = twilio.sent()
    # Its delivery report comes now (what the status webhook's job does): no ticket to note it on.
    assert delivery.record_status(open_rt, ack["sid"], "undelivered", "30003") == "applied"
    run_jobs(conn)

    [ticket] = zendesk.all("ticket")
    [summary] = [c["body"] for c in zendesk.comments(ticket["id"]) if not c["public"]]
    assert "not delivered (the automatic reply (ack), status undelivered)" in summary and "30003" in summary
    assert "Hotline texted the customer" not in summary
    assert len(twilio.sent()) == 1  # not sent again


def test_stop_after_the_first_reply_still_lets_the_summary_say_what_was_texted(
        client, conn, open_rt, zendesk, twilio):
    text(client, "hi there, a question about my booking")
    run_jobs(conn, "hotline-replies")
    [ack] = twilio.sent()
    text(client, "STOP")
    run_jobs(conn)

    [ticket] = zendesk.all("ticket")
    [summary] = [c["body"] for c in zendesk.comments(ticket["id"]) if c["body"].startswith("Hotline triage")]
    assert f"automatic reply (ack):\n{ack['body']}" in summary
    assert len(twilio.sent()) == 1


def test_an_unsubscribed_report_on_the_first_reply_opts_the_number_out_and_tags_the_ticket(
        client, conn, open_rt, zendesk, twilio):
    from bot import delivery

    text(client, "hi there, a question about my booking")
    run_jobs(conn, "hotline-replies")
    [ack] = twilio.sent()
    delivery.record_status(open_rt, ack["sid"], "undelivered", "21610")  # before the ticket exists
    assert conn.hexists(keys.OPTED_OUT, CUSTOMER)
    run_jobs(conn)
    [ticket] = zendesk.all("ticket")
    assert "sms_opted_out" in ticket["tags"]


def test_an_emergency_after_the_first_reply_keeps_both_in_the_summary_through_a_retry(
        client, conn, config, tmp_path, zendesk, twilio, monkeypatch):
    shipped_runtime(config, tmp_path, monkeypatch, business_hours={  # the shipped rules and model
        d: ["00:00", "23:59"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")})
    text(client, "hi there, a question about my booking")
    run_jobs(conn, "hotline-replies")
    [ack] = twilio.sent()
    text(client, "oh no my dog just got hit by a car and is bleeding")  # the urgent job takes over
    zendesk.fail_next("PUT", r"/tickets/\d+", 503)  # the summary note's first try
    run_jobs(conn, future=True)

    [ticket] = zendesk.all("ticket")
    [summary] = [c["body"] for c in zendesk.comments(ticket["id"]) if c["body"].startswith("Hotline triage")]
    assert "automatic reply (emergency)" in summary and f"automatic reply (ack):\n{ack['body']}" in summary
    assert [s["to"] for s in twilio.sent()].count(CUSTOMER) == 2  # the acknowledgement, the advice


def test_a_text_after_a_closed_ticket_is_answered_first_and_its_follow_up_says_so(
        client, conn, open_rt, zendesk, twilio):
    closed = known_conversation(conn, zendesk, "closed", hours_ago=100)
    conn.hset(keys.conversation("c1"), "ticket_status", "closed")  # as Hotline last saw it

    text(client, "hello again, new problem")
    assert conn.llen("rq:queue:hotline-replies") == 1
    run_jobs(conn)

    new = zendesk.all("ticket")[-1]
    assert new["via_followup_source_id"] == closed["id"]
    [ack] = twilio.sent()
    [summary] = [c["body"] for c in zendesk.comments(new["id"]) if not c["public"]]
    assert f"Hotline texted the customer the automatic reply (ack):\n{ack['body']}" in summary
    assert zendesk.comments(closed["id"]) == [] or all(c["public"] for c in zendesk.comments(closed["id"]))
    assert conn.zcard("rq:registry:failed:hotline-replies") == 0
    assert conn.zcard("rq:failed:hotline-replies") == 0


def test_an_acknowledgement_that_names_the_case_waits_for_the_ticket(client, conn, open_rt, zendesk, twilio):
    from bot.template_store import TemplateStore

    TemplateStore(conn, open_rt.templates).save(
        "sms/ack/en", "Got it: case #{{ ticket_id }}. A specialist will text you back.", "ops")
    open_rt.templates._checked_at = float("-inf")  # this process sees the saved override now
    text(client, "hello, question about my booking")
    run_jobs(conn)

    [ticket] = zendesk.all("ticket")
    [ack] = twilio.sent()
    assert ack["body"] == f"Got it: case #{ticket['id']}. A specialist will text you back."


def test_next_message_is_one_safe_update_on_the_same_ticket(client, conn, open_rt, zendesk, twilio):
    text(client, "my dog is hurt")
    run_jobs(conn)
    calls_before = len(zendesk.calls())

    text(client, "he is limping on his front leg")
    assert conn.llen("rq:queue:hotline-replies") == 0  # it has a ticket: no first reply queued
    run_jobs(conn)

    assert zendesk.calls()[calls_before:] == ["PUT /tickets/{id}"]
    [ticket] = zendesk.all("ticket")
    assert zendesk.texts(ticket["id"]) == [
        "my dog is hurt", "he is limping on his front leg"]
    assert len(twilio.sent()) == 1  # no second auto-reply


def test_ticket_changed_by_an_agent_is_read_again_before_writing(client, conn, open_rt, zendesk, twilio):
    text(client, "my dog is hurt")
    run_jobs(conn)
    [ticket] = zendesk.all("ticket")
    zendesk.set_ticket(ticket["id"], status="pending")  # an agent replied and set pending
    before = len(zendesk.calls())

    text(client, "thanks, here is more")
    run_jobs(conn)

    assert zendesk.calls()[before:] == ["PUT /tickets/{id}", "GET /tickets/{id}", "PUT /tickets/{id}"]
    assert zendesk.all("ticket")[0]["status"] == "open"  # the customer's reply reopens it
    assert len(zendesk.texts(ticket["id"])) == 2


def test_sms_on_ticket_solved_inside_window_reopens_it(client, conn, open_rt, zendesk, twilio):
    solved = known_conversation(conn, zendesk, "solved", 5)

    text(client, "it happened again")
    run_jobs(conn)

    assert len(zendesk.all("ticket")) == 1
    assert zendesk.all("ticket")[0]["status"] == "open"
    assert zendesk.comments(solved["id"])[-1]["body"] == "it happened again"


def test_sms_on_ticket_solved_beyond_window_opens_a_new_ticket(client, conn, open_rt, zendesk, twilio):
    old = known_conversation(conn, zendesk, "solved", 73)

    text(client, "new problem: sitter did not show up")
    run_jobs(conn)

    tickets = zendesk.all("ticket")
    assert len(tickets) == 2
    assert tickets[1]["via_followup_source_id"] is None
    assert zendesk.comments(old["id"]) == []
    assert conn.hget(keys.conversation("c1"), "ticket_id").decode() == str(tickets[1]["id"])


def test_sms_on_closed_ticket_opens_a_follow_up(client, conn, open_rt, zendesk, twilio):
    closed = known_conversation(conn, zendesk, "closed")

    text(client, "hello again")
    run_jobs(conn)

    new = zendesk.all("ticket")[-1]
    assert new["id"] != closed["id"] and new["via_followup_source_id"] == closed["id"]
    assert len(twilio.sent()) == 1


def test_ticket_closed_between_writes_gets_a_follow_up_not_a_retry_loop(client, conn, open_rt, zendesk, twilio):
    text(client, "first")
    run_jobs(conn)
    [first] = zendesk.all("ticket")
    # Closed without the change reaching Hotline's stamp: the safe update is refused with 422.
    raw = json.loads(conn.hget("zdmock:ticket", str(first["id"])))
    raw["status"] = "closed"
    conn.hset("zdmock:ticket", str(first["id"]), json.dumps(raw))

    text(client, "second")
    run_jobs(conn)

    tickets = zendesk.all("ticket")
    assert len(tickets) == 2 and tickets[1]["via_followup_source_id"] == first["id"]
    assert zendesk.texts(tickets[1]["id"]) == ["second"]
    # One refused update (422) and the two tickets' triage notes; no retry loop.
    assert zendesk.calls().count("PUT /tickets/{id}") == 3
    assert scheduled_in(conn) == []


def test_reference_in_text_picks_the_requesters_own_ticket(client, conn, open_rt, zendesk, twilio):
    user = zendesk.add_user(CUSTOMER)
    other = zendesk.add_user("+15559990000", name="Someone Else")
    mine = zendesk.add_ticket(user["id"], status="open")
    theirs = zendesk.add_ticket(other["id"], status="open")

    text(client, f"about ticket {mine['id']}: the vet bill is attached")
    run_jobs(conn)
    text(client, f"and #{theirs['id']} is not mine")
    run_jobs(conn)

    assert zendesk.texts(mine["id"]) == [
        f"about ticket {mine['id']}: the vet bill is attached", f"and #{theirs['id']} is not mine"]
    assert zendesk.comments(theirs["id"]) == []
    assert len(zendesk.all("ticket")) == 2


def test_search_lag_never_causes_a_second_user(client, conn, open_rt, zendesk, twilio):
    text(client, "first case")
    run_jobs(conn)
    [first] = zendesk.all("ticket")
    zendesk.set_ticket(first["id"], status="closed")

    text(client, "second case")
    run_jobs(conn)

    assert len(zendesk.all("user")) == 1  # search still cannot see the user Hotline made
    assert zendesk.calls().count("POST /users/create_or_update") == 1
    assert zendesk.all("ticket")[1]["requester_id"] == zendesk.all("user")[0]["id"]


def test_existing_zendesk_user_is_found_by_phone_without_plus(client, conn, open_rt, zendesk, twilio, mocked):
    user = zendesk.add_user(CUSTOMER, name="Dana Owner")
    text(client, "hi")
    run_jobs(conn)

    search = [c for c in mocked.calls if "/search.json" in c.request.url][0]
    assert "phone%3A15551230001" in search.request.url or "phone:15551230001" in search.request.url
    assert "POST /users/create_or_update" not in zendesk.calls()
    assert zendesk.all("ticket")[0]["requester_id"] == user["id"]


def test_after_hours_gets_the_after_hours_reply(client, conn, config, tmp_path, zendesk, twilio, monkeypatch):
    built = runtime.build(always_open(config, tmp_path, open_=False))
    monkeypatch.setattr(runtime, "get", lambda: built)

    text(client, "hello?")
    run_jobs(conn)

    [reply] = twilio.sent()
    assert "offline right now" in reply["body"]


def test_at_most_one_auto_reply_per_conversation_in_the_window(client, conn, open_rt, zendesk, twilio):
    text(client, "first")
    run_jobs(conn)
    zendesk.set_ticket(zendesk.all("ticket")[0]["id"], status="closed")
    text(client, "second, new ticket")
    run_jobs(conn)

    assert len(zendesk.all("ticket")) == 2
    assert len(twilio.sent()) == 1


def test_mms_media_is_downloaded_with_credentials_and_attached(client, conn, open_rt, zendesk, twilio, mocked):
    url = media_url("MM" + "a" * 32)
    twilio.add_media(url, JPEG, "image/jpeg", rsps=mocked)

    text(client, "photo of the bite", NumMedia="1", MediaUrl0=url, MediaContentType0="image/jpeg")
    run_jobs(conn)

    [fetch] = twilio.media_requests()
    assert fetch["auth"].startswith("Basic ")  # the account's credentials
    [(token, upload)] = zendesk.uploads().items()
    assert upload["content_type"] == "image/jpeg" and upload["size"] == len(JPEG)
    assert upload["filename"].endswith(".jpg")
    [ticket] = zendesk.all("ticket")
    [comment] = zendesk.public(ticket["id"])
    assert comment["attachments"] == [{"token": token}]
    assert "mms" in ticket["tags"]


def test_mms_media_of_wrong_type_or_too_large_is_noted_not_attached(client, conn, config, tmp_path,
                                                                     zendesk, twilio, mocked, monkeypatch):
    small = tmp_path / "small.yaml"
    small.write_text("timezone: UTC\nmedia:\n  max_bytes: 100\n  allowed_types: [image/jpeg]\n")
    built = runtime.build(dataclasses.replace(config, settings_path=small))
    monkeypatch.setattr(runtime, "get", lambda: built)
    big, exe = media_url("MM" + "b" * 32), media_url("MM" + "c" * 32)
    twilio.add_media(big, JPEG, "image/jpeg", rsps=mocked)

    text(client, "files", NumMedia="2", MediaUrl0=big, MediaContentType0="image/jpeg",
         MediaUrl1=exe, MediaContentType1="application/x-msdownload")
    run_jobs(conn)

    assert zendesk.uploads() == {}
    [comment] = zendesk.public(zendesk.all("ticket")[0]["id"])
    assert "attachment 1 not kept" in comment["body"] and "100-byte limit" in comment["body"]
    assert "attachment 2 not kept: type application/x-msdownload" in comment["body"]
    assert comment["attachments"] == []
