"""`POST /twilio/sms`: real payloads in, TwiML out, one queued event per MessageSid."""
import json
from urllib.parse import parse_qsl
from xml.etree import ElementTree

from bot import keys
from tests.conftest import load_form, post_twilio, sms, stored


def fixture_params(name: str) -> dict:
    return dict(parse_qsl(load_form(name), keep_blank_values=True))


def pending_events(conn) -> list[dict]:
    out = []
    for conv in conn.zrange(keys.PENDING_INDEX, 0, -1):
        out += [json.loads(m) for m in conn.zrange(keys.pending(conv.decode()), 0, -1)]
    return out


def test_real_inbound_sms_is_queued_and_answered_with_empty_twiml(client, conn):
    resp = post_twilio(client, "/twilio/sms", fixture_params("twilio/inbound_sms.form.txt"))

    assert resp.status_code == 200
    assert resp.mimetype == "text/xml"
    root = ElementTree.fromstring(resp.data)
    assert root.tag == "Response" and len(root) == 0
    [event] = pending_events(conn)
    assert event["provider_id"] == "SMbe794ce78f6b9fdf853d2acb76c080db"
    assert event["sender"] == "+16505551199"
    assert event["body"] == "hello 5"
    assert event["location"] == {"city": "SAN BRUNO", "state": "CA", "zip": "94030", "country": "US"}
    assert conn.llen("rq:queue:hotline-replies") == 1  # a new conversation's job
    # The job's only argument is the opaque conversation id: no number, no text.
    job_id = conn.lrange("rq:queue:hotline-replies", 0, -1)[0].decode()
    job_hash = b"".join(v for v in conn.hvals(f"rq:job:{job_id}") if isinstance(v, bytes))
    assert b"6505551199" not in job_hash and b"hello 5" not in job_hash


def test_real_inbound_mms_carries_its_media(client, conn):
    resp = post_twilio(client, "/twilio/sms", fixture_params("twilio/inbound_mms.form.txt"))

    assert resp.status_code == 200
    [event] = pending_events(conn)
    assert event["media"] == [{
        "url": "https://api.twilio.com/2010-04-01/Accounts/ACe2cdfdaa687e260e98c3f81f7896ce97"
               "/Messages/MM1c05a7205210e96eac11f4e1a484d3f2/Media/MEfb1d3ef549ca3899527125e69466bf8a",
        "content_type": "image/jpeg", "filename": ""}]
    assert event["sender"] == "+12032572584"


def test_repeated_message_sid_changes_nothing(client, conn):
    params = fixture_params("twilio/inbound_sms.form.txt")
    first = post_twilio(client, "/twilio/sms", params)
    before = {k: conn.type(k) for k in stored(conn, "hotline:*")}
    second = post_twilio(client, "/twilio/sms", params)

    assert first.status_code == second.status_code == 200
    assert second.data == first.data
    assert len(pending_events(conn)) == 1
    assert conn.llen("rq:queue:hotline-replies") == 1
    assert {k: conn.type(k) for k in stored(conn, "hotline:*")} == before


def test_missing_from_or_message_sid_is_400_with_reason(client, conn):
    no_from = sms("+15551230001", "hi")
    del no_from["From"]
    no_sid = sms("+15551230001", "hi")
    del no_sid["MessageSid"]

    r1 = post_twilio(client, "/twilio/sms", no_from)
    r2 = post_twilio(client, "/twilio/sms", no_sid)

    assert (r1.status_code, r1.json["reason"]) == (400, "missing From")
    assert (r2.status_code, r2.json["reason"]) == (400, "missing MessageSid")
    assert pending_events(conn) == []


def test_unparseable_sender_is_400(client, conn):
    resp = post_twilio(client, "/twilio/sms", sms("not-a-number", "hi"))
    assert resp.status_code == 400 and "From" in resp.json["reason"]


def test_unknown_extra_parameters_are_accepted(client, conn):
    params = sms("+15551230001", "hello", AddOns='{"status":"successful"}', NewThing="x")
    assert post_twilio(client, "/twilio/sms", params).status_code == 200
    assert len(pending_events(conn)) == 1


def test_body_over_64_kb_is_413_and_nothing_written(client, conn):
    params = sms("+15551230001", "x" * (65 * 1024))
    resp = post_twilio(client, "/twilio/sms", params)
    assert resp.status_code == 413
    assert resp.json["reason"] == "body over 65536 bytes (HOTLINE_MAX_BODY_BYTES)"
    assert stored(conn, "hotline:*") == []


def test_empty_body_text_is_still_a_message(client, conn):
    assert post_twilio(client, "/twilio/sms", sms("+15551230001", "")).status_code == 200
    assert pending_events(conn)[0]["body"] == ""
