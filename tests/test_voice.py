"""Voice (issue 5), driven as Twilio drives a call: post the real incoming-call payload,
parse each TwiML answer, and follow the action URLs it names."""
import dataclasses
from urllib.parse import parse_qsl, urlparse
from xml.etree import ElementTree

import pytest

from bot import jobs, keys, runtime
from tests.conftest import BASE_URL, load_form, post_twilio, run_jobs, stored
from tests.twilio_mock import ACCOUNT

CALLER = "+14164600203"  # from the captured payload
CALL_SID = "CA2767a6d7be9fe4adceec844dabb81746"
ON_CALL = "+15005550009"
RECORDING_SID = "RE" + "7" * 32
RECORDING_URL = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Recordings/{RECORDING_SID}"


def call_form() -> dict:
    return dict(parse_qsl(load_form("twilio/voice_incoming_call.form.txt"), keep_blank_values=True))


@pytest.fixture
def voice(config, conn, tmp_path, monkeypatch, request):
    """App and worker with the shipped rules, business hours always open (or closed)."""
    import yaml

    from web import create_app

    data = yaml.safe_load(config.settings_path.read_text())
    hours = ["00:00", "23:59"]
    data["business_hours"] = {} if getattr(request, "param", "open") == "closed" else \
        {d: hours for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    data["timezone"] = "UTC"
    path = tmp_path / "voice.yaml"
    path.write_text(yaml.safe_dump(data))
    cfg = dataclasses.replace(config, settings_path=path)
    built = runtime.build(cfg)
    monkeypatch.setattr(runtime, "get", lambda: built)
    return create_app(cfg, maintenance=False).test_client()


def twiml(resp) -> ElementTree.Element:
    assert resp.status_code == 200 and resp.mimetype == "text/xml", resp.data
    root = ElementTree.fromstring(resp.data)
    assert root.tag == "Response"
    return root


def follow(client, url: str, **params):
    """Post to a URL Hotline's TwiML named, signed as Twilio signs it."""
    parts = urlparse(url)
    assert url.startswith(BASE_URL + "/twilio/voice")
    form = {**call_form(), **params}
    return post_twilio(client, parts.path, form, query=parts.query)


def start(client):
    return twiml(post_twilio(client, "/twilio/voice", call_form()))


def transcribed_voicemail(client, twilio, mocked, words: str):
    """A voicemail, then Twilio's transcription callback (the captured one) saying `words`."""
    twilio.add_media(RECORDING_URL + ".mp3", b"ID3", "audio/mpeg", rsps=mocked)
    leave_voicemail(client)
    form = dict(parse_qsl(load_form("twilio/voice_transcription_callback.form.txt")))
    form.update(CallSid=CALL_SID, From=CALLER, RecordingSid=RECORDING_SID, TranscriptionText=words)
    assert post_twilio(client, "/twilio/voice/transcription", form).status_code == 204


def leave_voicemail(client, digit: str = "3", seconds: int = 15):
    """Call, press `digit`, and record a voicemail of `seconds`, following Hotline's TwiML."""
    root = start(client)
    record = twiml(follow(client, root.find("Gather").get("action"), Digits=digit)).find("Record")
    return twiml(follow(client, record.get("action"), RecordingSid=RECORDING_SID,
                        RecordingUrl=RECORDING_URL, RecordingDuration=str(seconds)))


def test_incoming_call_gets_greeting_and_menu_without_calling_zendesk(voice, conn, zendesk, twilio):
    root = start(voice)

    gather = root.find("Gather")
    assert gather.get("numDigits") == "1" and gather.get("action").startswith(BASE_URL + "/twilio/voice/menu")
    said = " ".join(s.text for s in gather.findall("Say"))
    assert "Thank you for calling" in said and "press 1" in said and "press 2" in said
    assert root.find("Redirect").text.startswith(BASE_URL + "/twilio/voice/menu")
    assert zendesk.calls() == [] and twilio.sent() == []
    assert conn.hget(keys.call(CALL_SID), "caller") == CALLER.encode()


@pytest.mark.parametrize("voice", ["closed"], indirect=True)
def test_after_hours_offers_emergency_or_voicemail(voice, conn, zendesk, twilio):
    root = start(voice)
    said = root.find("Gather").find("Say").text + " ".join(s.text for s in root.find("Gather").findall("Say"))
    assert "offline" in said and "press 1" in said and "press 2" not in said
    # Staying on the line (no key) goes straight to voicemail.
    after = twiml(follow(voice, root.find("Redirect").text))
    assert after.find("Record") is not None


def test_unknown_digits_repeat_the_menu_then_go_to_voicemail(voice, conn, zendesk, twilio):
    root = start(voice)
    again = twiml(follow(voice, root.find("Gather").get("action"), Digits="7"))
    assert "not one of the options" in again.find("Say").text
    assert again.find("Gather") is not None
    last = twiml(follow(voice, again.find("Gather").get("action"), Digits="9"))
    assert last.find("Record") is not None and last.find("Gather") is None


def test_emergency_is_forwarded_to_on_call_then_voicemail_and_an_urgent_ticket(
        voice, conn, zendesk, twilio, mocked):
    twilio.add_media(RECORDING_URL + ".mp3", b"ID3" + b"\x00" * 500, "audio/mpeg", rsps=mocked)
    root = start(voice)
    dial_twiml = twiml(follow(voice, root.find("Gather").get("action"), Digits="1"))
    dial = dial_twiml.find("Dial")
    assert dial.find("Number").text == ON_CALL and dial.get("timeout") == "20"

    record_twiml = twiml(follow(voice, dial.get("action"), DialCallStatus="no-answer"))
    record = record_twiml.find("Record")
    assert "could not pick up" in record_twiml.find("Say").text
    assert record.get("transcribe") == "true"
    assert record.get("transcribeCallback") == BASE_URL + "/twilio/voice/transcription"
    assert record.get("recordingStatusCallback") == BASE_URL + "/twilio/voice/recording"
    bye = twiml(follow(voice, record.get("action"), RecordingSid=RECORDING_SID, RecordingUrl=RECORDING_URL,
                       RecordingDuration="42"))
    assert bye.find("Hangup") is not None
    assert zendesk.calls() == []  # nothing but TwiML until the worker runs
    follow(voice, BASE_URL + "/twilio/voice/status", CallStatus="completed", CallDuration="80")

    run_jobs(conn, future=True)  # call_ended waits for late callbacks

    [ticket] = zendesk.all("ticket")
    assert ticket["priority"] == "urgent" and {"voice", "voicemail", "hotline_emergency"} <= set(ticket["tags"])
    assert ticket["subject"] == "Voicemail from Toronto, ON, CA"
    [comment] = zendesk.public(ticket["id"])
    assert "emergency line, 42 s" in comment["body"] and RECORDING_URL + ".mp3" in comment["body"]
    assert any("voicemail-" in u["filename"] and u["content_type"] == "audio/mpeg"
               for u in zendesk.uploads().values())
    assert any("audio attached" in n for n in zendesk.notes(ticket["id"]))
    assert [m["to"] for m in twilio.sent()].count(ON_CALL) == 1  # the alert with the link
    assert len(zendesk.all("ticket")) == 1  # the status callback did not add a missed call
    assert not any("missed" in t.lower() for t in zendesk.texts(ticket["id"]))
    assert not any(m["body"].startswith("Sorry we missed") for m in twilio.sent())


def test_voicemail_then_transcription_on_the_same_ticket_raises_priority(voice, conn, zendesk, twilio, mocked):
    twilio.add_media(RECORDING_URL + ".mp3", b"ID3" + b"\x00" * 100, "audio/mpeg", rsps=mocked)
    leave_voicemail(voice, "3", 20)
    run_jobs(conn)
    [ticket] = zendesk.all("ticket")
    assert ticket["priority"] == "normal"

    form = dict(parse_qsl(load_form("twilio/voice_transcription_callback.form.txt")))
    form.update(CallSid=CALL_SID, From=CALLER, Caller=CALLER, RecordingSid=RECORDING_SID,
                TranscriptionText="hi my dog got hit by a car and he is bleeding please call me back")
    assert post_twilio(voice, "/twilio/voice/transcription", form).status_code == 204
    assert post_twilio(voice, "/twilio/voice/transcription", form).status_code == 204  # redelivered
    run_jobs(conn)

    [ticket] = zendesk.all("ticket")
    texts = zendesk.texts(ticket["id"])
    assert texts[-1] == "Voicemail transcription: hi my dog got hit by a car and he is bleeding please call me back"
    assert len(texts) == 2 and ticket["priority"] == "urgent"
    assert any("raised the priority from normal to urgent" in n for n in zendesk.notes(ticket["id"]))


def test_unanswered_call_becomes_a_missed_call_ticket_and_a_text(voice, conn, zendesk, twilio):
    start(voice)
    status = {"CallStatus": "no-answer", "CallDuration": "0"}
    assert follow(voice, BASE_URL + "/twilio/voice/status", **status).status_code == 204
    assert follow(voice, BASE_URL + "/twilio/voice/status", **status).status_code == 204  # repeated
    run_jobs(conn, future=True)  # call_ended waits for late callbacks

    [ticket] = zendesk.all("ticket")
    assert ticket["subject"].startswith("Missed call") and "missed_call" in ticket["tags"]
    assert "nobody answered" in zendesk.texts(ticket["id"])[0]
    [sms] = twilio.sent()
    assert sms["to"] == CALLER and sms["body"].startswith("Sorry we missed your call")


def test_too_short_voicemail_is_a_missed_call(voice, conn, zendesk, twilio):
    leave_voicemail(voice, "2", 1)
    follow(voice, BASE_URL + "/twilio/voice/status", CallStatus="completed", CallDuration="9")
    run_jobs(conn, future=True)  # call_ended waits for late callbacks
    [ticket] = zendesk.all("ticket")
    assert "too short or silent" in zendesk.texts(ticket["id"])[0]
    assert twilio.sent()[0]["body"].startswith("Sorry we missed your call")


def test_opted_out_caller_gets_no_missed_call_text(voice, conn, zendesk, twilio):
    conn.hset(keys.OPTED_OUT, CALLER, 1)
    start(voice)
    follow(voice, BASE_URL + "/twilio/voice/status", CallStatus="busy", CallDuration="0")
    run_jobs(conn, future=True)  # call_ended waits for late callbacks
    assert len(zendesk.all("ticket")) == 1 and twilio.sent() == []


def test_answered_emergency_call_still_leaves_a_ticket(voice, conn, zendesk, twilio):
    root = start(voice)
    dial = twiml(follow(voice, root.find("Gather").get("action"), Digits="1")).find("Dial")
    # The on-call person picks up, hears the whisper and presses 1.
    whisper = twiml(follow(voice, dial.find("Number").get("url"), CallSid="CA" + "c" * 32,
                           ParentCallSid=CALL_SID))
    assert "Press 1 to accept" in whisper.find("Gather").find("Say").text
    bridged = twiml(follow(voice, whisper.find("Gather").get("action"), CallSid="CA" + "c" * 32,
                           Digits="1"))
    assert len(bridged) == 0
    assert twiml(follow(voice, dial.get("action"), DialCallStatus="completed")).find("Hangup") is not None
    follow(voice, BASE_URL + "/twilio/voice/status", CallStatus="completed", CallDuration="300")
    run_jobs(conn, future=True)  # call_ended waits for late callbacks
    [ticket] = zendesk.all("ticket")
    assert "answered by the on-call specialist" in zendesk.texts(ticket["id"])[0]
    assert ticket["priority"] == "urgent"
    assert not any(m["body"].startswith("Sorry we missed") for m in twilio.sent())
    # Someone spoke with the caller: no first-response watch (SPEC 7).
    assert jobs.scheduled_followups(conn, runtime.get().config, ticket["id"]) == []


def test_recording_not_yet_downloadable_keeps_the_link_and_is_retried(voice, conn, zendesk, twilio, mocked):
    tries = []

    def media(request):
        tries.append(1)
        if len(tries) < 3:
            return 404, {"Content-Type": "application/json"}, '{"code": 20404, "message": "not found"}'
        return 200, {"Content-Type": "audio/mpeg"}, b"ID3" + b"\x00" * 50

    mocked.add_callback("GET", RECORDING_URL + ".mp3", callback=media)
    leave_voicemail(voice)

    run_jobs(conn, future=True)

    [ticket] = zendesk.all("ticket")
    assert RECORDING_URL in zendesk.texts(ticket["id"])[0]
    assert len(tries) == 3 and len(zendesk.uploads()) == 1


def test_recording_that_never_downloads_gets_a_note(voice, conn, zendesk, twilio, mocked):
    mocked.add("GET", RECORDING_URL + ".mp3", status=404, json={"code": 20404})
    leave_voicemail(voice)
    run_jobs(conn, future=True)
    [ticket] = zendesk.all("ticket")
    assert any("could not attach the voicemail's audio" in n for n in zendesk.notes(ticket["id"]))


def test_missing_call_sid_is_400_and_forged_is_403(voice, conn):
    form = call_form()
    del form["CallSid"]
    resp = post_twilio(voice, "/twilio/voice", form)
    assert resp.status_code == 400 and "CallSid" in resp.json["reason"]
    forged = voice.post("/twilio/voice", data=call_form(), headers={"X-Twilio-Signature": "forged"})
    assert forged.status_code == 403 and not stored(conn)


def test_call_status_arriving_before_the_voicemail_still_means_a_voicemail(voice, conn, zendesk, twilio, mocked):
    twilio.add_media(RECORDING_URL + ".mp3", b"ID3" + b"\x00" * 100, "audio/mpeg", rsps=mocked)
    root = start(voice)
    record = twiml(follow(voice, root.find("Gather").get("action"), Digits="3")).find("Record")
    follow(voice, BASE_URL + "/twilio/voice/status", CallStatus="completed", CallDuration="30")
    run_jobs(conn)  # the status job waits for late callbacks
    follow(voice, record.get("action"), RecordingSid=RECORDING_SID, RecordingUrl=RECORDING_URL,
           RecordingDuration="25")
    run_jobs(conn, future=True)

    [ticket] = zendesk.all("ticket")
    assert ticket["subject"].startswith("Voicemail")
    assert not any("Missed call" in t for t in zendesk.texts(ticket["id"]))
    assert not any(m["body"].startswith("Sorry we missed") for m in twilio.sent())


def test_withheld_number_still_leaves_a_ticket(voice, conn, zendesk, twilio):
    form = dict(call_form(), From="+266696687", Caller="+266696687")
    post_twilio(voice, "/twilio/voice", form)
    post_twilio(voice, "/twilio/voice/status", dict(form, CallStatus="no-answer", CallDuration="0"))
    run_jobs(conn, future=True)

    [ticket] = zendesk.all("ticket")
    assert "number was withheld" in zendesk.texts(ticket["id"])[0]
    assert zendesk.all("user")[0]["name"] == "Caller (number withheld)"
    assert twilio.sent() == []


def test_spanish_voicemail_transcription_sets_the_language(voice, conn, zendesk, twilio, mocked):
    transcribed_voicemail(voice, twilio, mocked,
                          "hola mi perro se escapó y no lo encuentro por favor llámame")
    run_jobs(conn, future=True)
    conv = conn.hget(keys.CONV_IDS, f"phone:{CALLER}").decode()
    assert conn.hget(keys.conversation(conv), "language") == b"es"


def test_card_number_in_a_transcription_is_masked(voice, conn, zendesk, twilio, mocked):
    transcribed_voicemail(voice, twilio, mocked, "my card is 4111 1111 1111 1111 please refund")
    run_jobs(conn, future=True)
    texts = " ".join(zendesk.texts(zendesk.all("ticket")[0]["id"]))
    assert "[card ending 1111]" in texts and "4111 1111" not in texts


def test_on_call_voicemail_picking_up_is_not_an_answer(voice, conn, zendesk, twilio):
    root = start(voice)
    dial = twiml(follow(voice, root.find("Gather").get("action"), Digits="1")).find("Dial")
    whisper = twiml(follow(voice, dial.find("Number").get("url"), CallSid="CA" + "d" * 32,
                           ParentCallSid=CALL_SID))
    assert whisper.find("Hangup") is not None  # nobody pressed 1: the leg ends
    after = twiml(follow(voice, dial.get("action"), DialCallStatus="completed"))
    assert after.find("Record") is not None  # the caller leaves a voicemail instead
