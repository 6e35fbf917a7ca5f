"""What `flask hotline simulate …` sends: webhooks as Twilio and SendGrid would send them.

Each payload has the shape of a real capture (tests/fixtures/twilio/*.form.txt,
tests/fixtures/sendgrid/default_data.multipart.txt). A simulated call plays the
caller's side of the TwiML Hotline answers with: it presses the digit a
<Gather> asks for, lets a <Dial> go unanswered, and after a <Record> posts the
recording, its status and its transcription to the URLs the TwiML names —
then the call's status callback, as Twilio does when the caller hangs up.
"""
from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from email.utils import formatdate, make_msgid

import requests
from twilio.request_validator import RequestValidator


class NotListening(Exception):
    """Nothing answers at the URL a simulated webhook was sent to."""

    def __init__(self, url: str, exc: Exception):
        super().__init__(f"nothing is listening at {url} ({type(exc).__name__}). Start Hotline "
                         f"with `make run` (it writes var/run.env, which `flask hotline …` reads), "
                         f"or point --target at a running instance.")


def _post(url: str, **kwargs) -> requests.Response:
    try:
        return requests.post(url, timeout=10, **kwargs)
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise NotListening(url.split("?")[0], exc) from None


def post_signed(base_url: str, path: str, params: dict, token: str,
                target: str | None = None) -> requests.Response:
    """POST `params` to `target` (default `base_url`) signed as Twilio would for base_url+path.

    `path` may carry a query string (Twilio signs the URL with it).
    """
    url = base_url.rstrip("/") + path
    signature = RequestValidator(token).compute_signature(url, params)
    return _post((target or base_url).rstrip("/") + path, data=params,
                 headers={"X-Twilio-Signature": signature})


def twilio_sms_params(sender: str, to: str, text: str, account_sid: str,
                      media: tuple[str, ...] = ()) -> dict:
    """The form Twilio posts for an inbound text (field names as in a real capture)."""
    sid = ("MM" if media else "SM") + uuid.uuid4().hex
    params = {
        "ToCountry": "US", "ToState": "CA", "SmsMessageSid": sid, "NumMedia": str(len(media)),
        "ToCity": "SAN FRANCISCO", "FromZip": "94103", "SmsSid": sid, "FromState": "CA",
        "SmsStatus": "received", "FromCity": "SAN FRANCISCO", "Body": text, "FromCountry": "US",
        "To": to, "ToZip": "94103", "NumSegments": "1", "MessageSid": sid,
        "AccountSid": account_sid, "From": sender, "ApiVersion": "2010-04-01",
    }
    for i, url in enumerate(media):
        params[f"MediaUrl{i}"] = url
        params[f"MediaContentType{i}"] = "image/jpeg"
    return params


def call_params(sender: str, to: str, account_sid: str, call_sid: str, status: str) -> dict:
    """What Twilio posts with every request of an inbound call (tests/fixtures/twilio/
    voice_incoming_call.form.txt)."""
    return {
        "Called": to, "ToState": "CA", "CallerCountry": "US", "Direction": "inbound",
        "CallerState": "CA", "ToZip": "", "CallSid": call_sid, "To": to, "CallerZip": "94103",
        "ToCountry": "US", "ApiVersion": "2010-04-01", "CalledZip": "", "CalledCity": "",
        "CallStatus": status, "From": sender, "AccountSid": account_sid, "CalledCountry": "US",
        "CallerCity": "SAN FRANCISCO", "Caller": sender, "FromCountry": "US", "ToCity": "",
        "FromCity": "SAN FRANCISCO", "CalledState": "CA", "FromZip": "94103", "FromState": "CA",
    }


@dataclass
class Step:
    """One request of a simulated call and Hotline's answer."""

    path: str
    status: int
    verbs: list[str] = field(default_factory=list)

    def line(self) -> str:
        return f"{self.status} {self.path}" + (f"  → {' '.join(self.verbs)}" if self.verbs else "")


class Call:
    """The caller's side of one call to Hotline, following its TwiML."""

    MAX_STEPS = 12

    def __init__(self, base_url: str, token: str, sender: str, to: str, account_sid: str,
                 digit: str, words: str, seconds: int = 12, target: str | None = None):
        self.base_url, self.token, self.target = base_url.rstrip("/"), token, target
        self.sender, self.to, self.account_sid = sender, to, account_sid
        self.digit, self.words, self.seconds = digit, words, seconds
        self.sid = "CA" + uuid.uuid4().hex
        self.steps: list[Step] = []

    def _path(self, url: str) -> str:
        """An absolute URL from the TwiML → the path (and query) under PUBLIC_BASE_URL."""
        if url.startswith(self.base_url):
            return url[len(self.base_url):] or "/"
        if url.startswith("/"):
            return url
        raise ValueError(f"TwiML points outside PUBLIC_BASE_URL: {url}")

    def post(self, url_or_path: str, status: str = "in-progress", **extra) -> ET.Element | None:
        path = self._path(url_or_path)
        params = {**call_params(self.sender, self.to, self.account_sid, self.sid, status), **extra}
        resp = post_signed(self.base_url, path, params, self.token, self.target)
        root = None
        if resp.ok and resp.text.strip().startswith("<"):
            root = ET.fromstring(resp.text)
        self.steps.append(Step(path, resp.status_code,
                               [child.tag for child in root] if root is not None else []))
        if not resp.ok:
            raise CallFailed(self.steps)
        return root

    def run(self) -> list[Step]:
        """Ring, follow the TwiML to its end, then the status callback."""
        twiml = self.post("/twilio/voice", status="ringing")
        pressed = False
        for _ in range(self.MAX_STEPS):
            if twiml is None:
                break
            twiml = self._follow(twiml, pressed)
            pressed = True
        self.post("/twilio/voice/status", status="completed", CallDuration=str(self.seconds + 20))
        return self.steps

    def _follow(self, twiml: ET.Element, pressed: bool) -> ET.Element | None:
        """Do what the caller (and Twilio) would do with the first verb that moves on."""
        for verb in twiml:
            if verb.tag == "Gather":
                # Press the digit once; a second menu (invalid choice) gets no key.
                return self.post(verb.get("action"), Digits="" if pressed else self.digit)
            if verb.tag == "Dial":  # the on-call person does not pick up
                return self.post(verb.get("action"), DialCallStatus="no-answer",
                                 DialCallDuration="0")
            if verb.tag == "Record":
                return self._voicemail(verb)
            if verb.tag == "Redirect":
                return self.post(verb.text.strip())
            if verb.tag == "Hangup":
                return None
        return None

    def _voicemail(self, record: ET.Element) -> ET.Element | None:
        rec_sid = "RE" + uuid.uuid4().hex
        url = f"https://api.twilio.com/2010-04-01/Accounts/{self.account_sid}/Recordings/{rec_sid}"
        recording = {"RecordingSid": rec_sid, "RecordingUrl": url,
                     "RecordingDuration": str(self.seconds)}
        after = self.post(record.get("action"), status="completed", Digits="hangup", **recording)
        if record.get("recordingStatusCallback"):
            self.post(record.get("recordingStatusCallback"), status="completed",
                      RecordingStatus="completed", RecordingChannels="1",
                      RecordingSource="RecordVerb", RecordingStartTime=formatdate(usegmt=True),
                      **recording)
        if record.get("transcribeCallback"):
            tsid = "TR" + uuid.uuid4().hex
            self.post(record.get("transcribeCallback"), status="completed",
                      TranscriptionSid=tsid, TranscriptionType="fast",
                      TranscriptionUrl=f"{url}/Transcriptions/{tsid}",
                      TranscriptionText=self.words, TranscriptionStatus="completed",
                      RecordingSid=rec_sid, RecordingUrl=url)
        return after


class CallFailed(Exception):
    def __init__(self, steps: list[Step]):
        self.steps = steps
        super().__init__(f"Hotline answered {steps[-1].status} to {steps[-1].path}")


def email_fields(sender: str, name: str, to: str, subject: str, text: str) -> dict[str, str]:
    """The fields SendGrid's Inbound Parse posts in parsed mode (tests/fixtures/sendgrid/
    default_data.multipart.txt)."""
    domain = sender.rsplit("@", 1)[-1]
    headers = "\n".join([
        "MIME-Version: 1.0",
        f"From: {name} <{sender}>",
        f"Date: {formatdate(localtime=False, usegmt=True)}",
        f"Message-ID: {make_msgid(domain=domain)}",
        f"Subject: {subject}",
        f"To: {to}",
        'Content-Type: text/plain; charset="UTF-8"',
    ])
    return {
        "headers": headers, "dkim": f"{{@{domain} : pass}}", "to": to, "from": f"{name} <{sender}>",
        "text": text + "\n", "sender_ip": "127.0.0.1",
        "envelope": f'{{"to":["{to}"],"from":"{sender}"}}', "attachments": "0",
        "subject": subject, "charsets": '{"to":"UTF-8","html":"UTF-8","subject":"UTF-8",'
                                        '"from":"UTF-8","text":"UTF-8"}',
        "SPF": "pass", "spam_score": "0.1",
    }


def post_email(base_url: str, fields: dict[str, str], auth: tuple[str, str] | None,
               target: str | None = None) -> requests.Response:
    """POST the fields as multipart/form-data, with the Inbound Parse URL's basic auth."""
    url = (target or base_url).rstrip("/") + "/sendgrid/inbound"
    return _post(url, files={k: (None, v) for k, v in fields.items()}, auth=auth)
