"""Twilio, through twilio-python's REST client (with a timeout: it has none by default)."""
from __future__ import annotations

import requests
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from bot.errors import PermanentError, TransientError
from bot.phone import MediaFile, read_limited


class TwilioPhone:
    """`bot.phone.Phone` over the Twilio REST API."""

    def __init__(self, account_sid: str, auth_token: str, from_number: str = "",
                 messaging_service_sid: str = "", timeout: float = 10.0,
                 status_callback: str | None = None):
        self.account_sid, self.auth_token = account_sid, auth_token
        self.from_number, self.messaging_service_sid = from_number, messaging_service_sid
        self.timeout = timeout
        self.status_callback = status_callback
        self.client = Client(account_sid, auth_token,
                             http_client=TwilioHttpClient(timeout=timeout))

    def send_sms(self, to: str, body: str) -> str:
        kwargs = {"to": to, "body": body}
        if self.messaging_service_sid:
            kwargs["messaging_service_sid"] = self.messaging_service_sid
        else:
            kwargs["from_"] = self.from_number
        if self.status_callback:
            kwargs["status_callback"] = self.status_callback
        try:
            return self.client.messages.create(**kwargs).sid
        except TwilioRestException as exc:
            if exc.status == 429 or exc.status >= 500:
                raise TransientError(f"twilio {exc.status}", status=exc.status, code=exc.code) from exc
            raise PermanentError(f"twilio {exc.status} code {exc.code}", status=exc.status,
                                 code=exc.code) from exc
        except requests.ConnectTimeout as exc:
            raise TransientError("twilio unreachable") from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            # The message may have been accepted: never blindly send it again.
            raise TransientError("twilio send outcome unknown", unknown_outcome=True) from exc

    def fetch_media(self, url: str, max_bytes: int) -> MediaFile:
        try:
            with requests.get(url, auth=(self.account_sid, self.auth_token),
                              timeout=self.timeout, stream=True) as resp:
                if resp.status_code == 429 or resp.status_code >= 500:
                    raise TransientError(f"twilio media {resp.status_code}", status=resp.status_code)
                if resp.status_code >= 400:
                    raise PermanentError(f"twilio media {resp.status_code}", status=resp.status_code)
                content = read_limited(resp, max_bytes)
                ctype = resp.headers.get("Content-Type", "application/octet-stream")
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TransientError("twilio media download failed") from exc
        return MediaFile(content=content, content_type=ctype.split(";")[0].strip().lower())
