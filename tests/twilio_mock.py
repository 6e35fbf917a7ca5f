"""Twilio's REST API (Messages, media), mocked with `responses` in its real JSON shapes.

State lives in the tests' private Redis, like `zendesk_mock`, so forked
worker processes share it.
"""
from __future__ import annotations

import json
import re
import uuid
from email.utils import formatdate
from urllib.parse import parse_qs

import requests
import responses

ACCOUNT = "AC" + "1" * 32
TOKEN = "test-auth-token"
FROM = "+15005550006"
API = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}"
P = "twmock:"

JPEG = bytes.fromhex("ffd8ffe000104a46494600010100000100010000ffdb004300") + b"\x00" * 200 + b"\xff\xd9"


class TwilioMock:
    def __init__(self, conn):
        self.r = conn

    def sent(self) -> list[dict]:
        return [json.loads(m) for m in self.r.lrange(P + "sent", 0, -1)]

    def media_requests(self) -> list[dict]:
        return [json.loads(m) for m in self.r.lrange(P + "media", 0, -1)]

    def fail_next_send(self, status: int, code: int, message: str = "mocked", times: int = 1,
                       exception: str | None = None) -> None:
        for _ in range(times):
            self.r.rpush(P + "fail", json.dumps({"status": status, "code": code,
                                                 "message": message, "exception": exception}))

    def add_media(self, url: str, content: bytes = JPEG, content_type: str = "image/jpeg",
                  rsps: responses.RequestsMock | None = None) -> None:
        """Serve `url` as Twilio does: a redirect to the file's storage URL."""
        storage = f"https://s3-external-1.amazonaws.com/media.twiliocdn.com/{ACCOUNT}/{uuid.uuid4().hex}"

        def media(request):
            self.r.rpush(P + "media", json.dumps({"url": request.url,
                                                  "auth": request.headers.get("Authorization", "")}))
            return 307, {"Location": storage}, ""

        rsps.add_callback("GET", url, callback=media)
        rsps.add("GET", storage, body=content, content_type=content_type,
                 headers={"Content-Length": str(len(content))})

    def install(self, rsps: responses.RequestsMock) -> "TwilioMock":
        rsps.add_callback("POST", f"{API}/Messages.json", callback=self._create_message)
        return self

    def _create_message(self, request):
        fail = self.r.lpop(P + "fail")
        if fail:
            fail = json.loads(fail)
            if fail["exception"]:
                raise getattr(requests.exceptions, fail["exception"])("mocked")
            return fail["status"], {"Content-Type": "application/json"}, json.dumps({
                "code": fail["code"], "message": fail["message"],
                "more_info": f"https://www.twilio.com/docs/errors/{fail['code']}",
                "status": fail["status"]})
        form = {k: v[0] for k, v in parse_qs(request.body if isinstance(request.body, str)
                                             else request.body.decode()).items()}
        sid = "SM" + uuid.uuid4().hex
        now = formatdate(usegmt=True)
        body = form.get("Body", "")
        msg = {"account_sid": ACCOUNT, "api_version": "2010-04-01", "body": body,
               "date_created": now, "date_sent": None, "date_updated": now, "direction": "outbound-api",
               "error_code": None, "error_message": None, "from": form.get("From"),
               "messaging_service_sid": form.get("MessagingServiceSid"),
               "num_media": "0", "num_segments": str(max(1, -(-len(body) // 153))),
               "price": None, "price_unit": "USD", "sid": sid, "status": "queued",
               "subresource_uris": {"media": f"/2010-04-01/Accounts/{ACCOUNT}/Messages/{sid}/Media.json"},
               "to": form.get("To"), "uri": f"/2010-04-01/Accounts/{ACCOUNT}/Messages/{sid}.json"}
        self.r.rpush(P + "sent", json.dumps(msg))
        return 201, {"Content-Type": "application/json"}, json.dumps(msg)


def media_url(message_sid: str, media_sid: str | None = None) -> str:
    media_sid = media_sid or "ME" + uuid.uuid4().hex
    return f"{API}/Messages/{message_sid}/Media/{media_sid}"


def is_twilio_url(url: str) -> bool:
    return bool(re.match(r"https://api\.twilio\.com/", url))
