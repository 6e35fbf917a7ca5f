"""Twilio, through twilio-python's REST client (with a timeout: it has none by default)."""
from __future__ import annotations

import contextlib
from datetime import datetime, timezone
from typing import Iterator

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from bot.errors import PermanentError, TransientError
from bot.metrics import api_outcome
from bot.phone import MediaFile, read_limited


class CountingHttpClient(TwilioHttpClient):
    """twilio-python's HTTP client, telling `record(outcome)` of every call it makes."""

    def __init__(self, record, **kwargs):
        super().__init__(**kwargs)
        self.record = record

    def request(self, *args, **kwargs):
        try:
            response = super().request(*args, **kwargs)
        except requests.RequestException:
            self.record("error")
            raise
        self.record(api_outcome(response.status_code))
        return response


class TwilioPhone:
    """`bot.phone.Phone` over the Twilio REST API."""

    def __init__(self, account_sid: str, auth_token: str, from_number: str = "",
                 messaging_service_sid: str = "", timeout: float = 10.0,
                 status_callback: str | None = None, record=None):
        """`record(outcome)`, when given, is told of every HTTP call: `ok`,
        `rate_limited` or `error` (see `bot.metrics.api_request`)."""
        self.record = record or (lambda outcome: None)
        self.account_sid, self.auth_token = account_sid, auth_token
        self.from_number, self.messaging_service_sid = from_number, messaging_service_sid
        self.timeout = timeout
        self.status_callback = status_callback
        self.client = Client(account_sid, auth_token,
                             http_client=CountingHttpClient(self.record, timeout=timeout))

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
                self.record(api_outcome(resp.status_code))
                if resp.status_code == 429 or resp.status_code >= 500:
                    raise TransientError(f"twilio media {resp.status_code}", status=resp.status_code)
                if resp.status_code >= 400:
                    raise PermanentError(f"twilio media {resp.status_code}", status=resp.status_code)
                content = read_limited(resp, max_bytes)
                ctype = resp.headers.get("Content-Type", "application/octet-stream")
        except (requests.ConnectionError, requests.Timeout) as exc:
            self.record("error")
            raise TransientError("twilio media download failed") from exc
        return MediaFile(content=content, content_type=ctype.split(";")[0].strip().lower())

    # -- reading back what Twilio received (reconciliation, SPEC 10) -------------

    LIST_PAGE_SIZE = 100  # records per list request; Twilio allows up to 1000

    @contextlib.contextmanager
    def _reading(self, what: str):
        """Twilio's answers to a read, as Hotline's transient/permanent errors."""
        try:
            yield
        except TwilioRestException as exc:
            if exc.status == 429 or exc.status >= 500:
                raise TransientError(f"twilio {what} {exc.status}", status=exc.status,
                                     code=exc.code) from exc
            raise PermanentError(f"twilio {what} {exc.status} code {exc.code}", status=exc.status,
                                 code=exc.code) from exc
        except TwilioException as exc:
            # A list page that is not 200 comes as the base exception with the response.
            response = exc.args[1] if len(exc.args) > 1 else None
            status = getattr(response, "status_code", 0)
            if status == 429 or status >= 500:
                after = (getattr(response, "headers", None) or {}).get("Retry-After", "")
                raise TransientError(f"twilio {what} {status}", status=status,
                                     retry_after=float(after) if after.isdigit() else None) from exc
            raise PermanentError(f"twilio {what} {status or 'failed'}", status=status) from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TransientError(f"twilio {what} unreachable") from exc

    def support_numbers(self) -> list[str]:
        """The numbers customers text and call: TWILIO_FROM_NUMBER and, with a Messaging
        Service, every number in its sender pool (one paged list request)."""
        numbers = [self.from_number] if self.from_number else []
        if self.messaging_service_sid:
            with self._reading("service numbers"):
                pool = self.client.messaging.v1.services(self.messaging_service_sid) \
                    .phone_numbers.stream(page_size=self.LIST_PAGE_SIZE)
                numbers += [n.phone_number for n in pool if n.phone_number]
        return list(dict.fromkeys(numbers))

    def inbound_messages(self, to: str, since: datetime) -> Iterator[dict]:
        """Inbound texts to `to` that Twilio had since `since` (aware), newest first, each as
        the fields its webhook would have posted (`MessageSid`, `From`, `To`, `Body`,
        `NumMedia`) plus `sent_at` (epoch seconds, Twilio's time). Paged lazily: the
        caller stops reading when it has what it needs."""
        with self._reading("message list"):
            # DateSent> is documented at day granularity: the time is checked here too.
            for m in self.client.messages.stream(to=to, date_sent_after=_utc(since),
                                                 page_size=self.LIST_PAGE_SIZE):
                sent = m.date_sent or m.date_created
                if m.direction != "inbound" or sent is None:
                    continue
                if sent < since:
                    # The list is newest first, whatever the filter's granularity.
                    return
                yield {"MessageSid": m.sid, "From": m.from_ or "", "To": m.to or "",
                       "Body": m.body or "", "NumMedia": str(m.num_media or "0"),
                       "AccountSid": m.account_sid or "", "sent_at": sent.timestamp()}

    def message_media(self, message_sid: str) -> dict:
        """A message's media as its webhook names them (`MediaUrl0`, `MediaContentType0`…)."""
        fields = {}
        with self._reading("media list"):
            for i, media in enumerate(self.client.messages(message_sid).media.stream(
                    page_size=self.LIST_PAGE_SIZE)):
                uri = media.uri or ""
                fields[f"MediaUrl{i}"] = "https://api.twilio.com" + uri.removesuffix(".json")
                fields[f"MediaContentType{i}"] = media.content_type or ""
        return fields

    def inbound_calls(self, to: str, since: datetime) -> Iterator[dict]:
        """Inbound calls to `to` that started since `since`, newest first, as the fields of
        their status callback (`CallSid`, `From`, `To`, `CallStatus`, `CallDuration`) plus
        `sent_at` (when the call started, epoch seconds)."""
        with self._reading("call list"):
            for c in self.client.calls.stream(to=to, start_time_after=_utc(since),
                                              page_size=self.LIST_PAGE_SIZE):
                started = c.start_time or c.date_created
                if c.direction != "inbound" or started is None:
                    continue
                if started < since:
                    return
                yield {"CallSid": c.sid, "From": c._from or "", "To": c.to or "",
                       "CallStatus": c.status or "", "CallDuration": str(c.duration or "0"),
                       "sent_at": started.timestamp()}


def _utc(when: datetime) -> datetime:
    return when.astimezone(timezone.utc)
