"""No phone number, email address or customer text in any log line, job argument or RQ job
description (SPEC 3.5), over the whole flow: SMS, an emergency with its on-call alert, STOP,
a voicemail with its transcription, an email, an agent reply and a failed delivery."""
import dataclasses
import json
import re

import pytest
from rq.job import Job

from bot import runtime
from tests.conftest import SECRET, post_twilio, run_jobs
from tests.test_conversation_e2e import text
from tests.test_sendgrid import AUTH, PASSWORD, USER, email, post
from tests.test_voice import CALLER, RECORDING_URL, transcribed_voicemail
from tests.test_zendesk_events import comment_added, post_event

CUSTOMER = "+15551239876"
ON_CALL = "+15005550009"
WORDS = ["my cat swallowed a sewing needle", "he is bleeding and collapsed",
         "please call me back about the sitter", "refund for the vet invoice",
         "the invoice is attached to this email", "Can you send me the photos?"]
E164 = re.compile(r"\+\d[\d\s().-]{8,}\d")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")


@pytest.fixture
def everything(config, conn, tmp_path, monkeypatch):
    """One app and worker with every webhook's secret, open hours and the shipped on-call list."""
    import yaml

    from web import create_app

    data = yaml.safe_load(config.settings_path.read_text())
    data["business_hours"] = {d: ["00:00", "23:59"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    path = tmp_path / "all.yaml"
    path.write_text(yaml.safe_dump(data))
    cfg = dataclasses.replace(config, settings_path=path, zendesk_webhook_secret=SECRET,
                              sendgrid_inbound_user=USER, sendgrid_inbound_password=PASSWORD)
    built = runtime.build(cfg)
    monkeypatch.setattr(runtime, "get", lambda: built)
    return create_app(cfg, maintenance=False).test_client()


def leaks(haystack: str) -> list[str]:
    found = E164.findall(haystack)
    found += EMAIL.findall(haystack)
    found += [w for w in WORDS if w.lower() in haystack.lower()]
    for number in (CUSTOMER, CALLER, ON_CALL):  # also without the + or split up
        digits = number.lstrip("+")
        if digits in haystack or re.search(r"\D".join(digits[-7:]), haystack):
            found.append(number)
    return found


def test_the_whole_flow_logs_and_queues_no_personal_data(everything, conn, zendesk, twilio, mocked, captured):
    client = everything
    text(client, WORDS[0], sender=CUSTOMER)                     # emergency: on-call alert
    text(client, WORDS[1], sender=CUSTOMER)
    run_jobs(conn)
    [ticket] = zendesk.all("ticket")
    assert any(m["to"] == ON_CALL for m in twilio.sent())

    agent = zendesk.add_agent()
    zendesk.agent_comment(ticket["id"], agent["id"], WORDS[5])  # an agent's reply by SMS
    assert post_event(client, comment_added(ticket["id"], "ev-privacy-1")).status_code == 200
    run_jobs(conn)
    assert any(m["body"] == WORDS[5] for m in twilio.sent())

    sid = twilio.sent()[0]["sid"]                               # a failed delivery
    status = {"MessageSid": sid, "MessageStatus": "undelivered", "ErrorCode": "30003",
              "AccountSid": "AC" + "1" * 32, "To": CUSTOMER, "From": "+15005550006"}
    assert post_twilio(client, "/twilio/sms/status", status).status_code == 204
    text(client, "STOP", sender=CUSTOMER)
    run_jobs(conn)

    transcribed_voicemail(client, twilio, mocked, WORDS[2])     # a voicemail and its words
    run_jobs(conn, future=True)

    assert post(client, email(frm="Dana Owner <dana.owner@example.com>", subject=WORDS[3],
                              text=WORDS[4]), AUTH).status_code == 200
    run_jobs(conn)

    assert len(zendesk.all("ticket")) == 3
    lines = "\n".join(captured.lines)
    assert '"event": "send.sent"' in lines and "••• ••• 9876" in lines  # it did log, masked
    assert leaks(lines) == [], f"personal data in the logs: {leaks(lines)}"

    jobs = [Job.fetch(k.decode().split(":", 2)[2], connection=conn) for k in conn.keys("rq:job:*")]
    assert len(jobs) > 5
    described = json.dumps([[j.description, j.args, j.kwargs] for j in jobs], default=str)
    assert leaks(described) == [], f"personal data in RQ jobs: {leaks(described)}"
