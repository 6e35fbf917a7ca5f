"""One `event_id` follows an event through the JSON logs (SPEC 11): the webhook's line, every
job line, the Zendesk write (audit metadata) and the text it caused — and no personal data."""
import io
import json
import logging

import pytest

from bot import logs
from tests.conftest import post_twilio, run_jobs, sms

CUSTOMER = "+15551230001"


@pytest.fixture
def json_lines():
    """Every line the `hotline` loggers write, parsed, through Hotline's own JSON handler."""
    stream = io.StringIO()
    handler = logs.handler(stream)
    logger = logging.getLogger("hotline")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)
    logger.setLevel(previous)


def test_one_event_followed_from_webhook_to_zendesk_write_and_ack(client, conn, open_rt, zendesk,
                                                                   twilio, json_lines):
    resp = post_twilio(client, "/twilio/sms", sms(CUSTOMER, "my cat swallowed a sock"))
    assert resp.status_code == 200
    [web] = [line for line in json_lines() if line["event"].startswith("webhook.")]
    assert web["event"] == "webhook.accepted" and web["source"] == "sms" and web["status"] == 200
    event_id = web["event_id"]
    assert len(event_id) == 32

    run_jobs(conn)
    lines = json_lines()
    by_event = {line["event"]: line for line in lines}
    written = by_event["conversation.written"]
    assert written["event_id"] == event_id and written["event_ids"] == [event_id]
    assert by_event["conversation.user-created"]["event_id"] == event_id
    sent = by_event["send.sent"]
    assert sent["event_id"] == event_id and sent["intent"].startswith("auto:")
    # Every Hotline line from the worker is about this event.
    assert {line.get("event_id") for line in lines} == {event_id}

    # The Zendesk write carries it in the audit's metadata: ticket creation and the note.
    [ticket] = zendesk.all("ticket")
    audits = [a for a in zendesk.all("audit") if a["ticket_id"] == ticket["id"]]
    assert [a["metadata"]["custom"].get("hotline_event") for a in audits] == [event_id, event_id]
    [ack] = twilio.sent()
    assert "specialist will text you back" in ack["body"]

    # No phone number or message text in any line.
    everything = "\n".join(json.dumps(line) for line in lines)
    assert "5551230001" not in everything and "sock" not in everything


def test_refused_and_duplicate_webhooks_have_their_line(client, conn, json_lines):
    params = sms(CUSTOMER, "hello")
    post_twilio(client, "/twilio/sms", params)
    post_twilio(client, "/twilio/sms", params)
    post_twilio(client, "/twilio/sms", params, signature="forged")
    web = [line for line in json_lines() if line["event"].startswith("webhook.")]
    assert [line["event"] for line in web] == ["webhook.accepted", "webhook.duplicate",
                                                "webhook.refused"]
    # A retry is a new event id for the same message: the duplicate line names its own.
    assert web[0]["event_id"] and web[1]["event_id"] and web[2]["event_id"] is None
    assert web[2]["status"] == 403


def test_the_job_carries_the_event_id_in_its_meta_not_its_arguments(client, conn):
    from rq import Queue

    post_twilio(client, "/twilio/sms", sms(CUSTOMER, "hello"))
    [job] = Queue("hotline-replies", connection=conn).get_jobs()  # a new conversation's
    assert len(job.meta["event_id"]) == 32
    assert job.meta["event_id"] not in json.dumps(job.args) and CUSTOMER not in job.description
