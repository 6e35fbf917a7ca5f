"""Twilio's REST API (Messages, media), mocked with `responses` in its real JSON shapes.

State lives in the tests' private Redis, like `zendesk_mock`, so forked
worker processes share it.
"""
from __future__ import annotations

import json
import re
import uuid
from datetime import date, datetime, timezone
from email.utils import formatdate
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
import responses

ACCOUNT = "AC" + "1" * 32
TOKEN = "test-auth-token"
FROM = "+15005550006"
API = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}"
BASE = f"/2010-04-01/Accounts/{ACCOUNT}"
SERVICE = "MG" + "2" * 32
MESSAGING = f"https://messaging.twilio.com/v1/Services/{SERVICE}"
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
        rsps.add_callback("GET", re.compile(re.escape(API) + r"/Messages\.json(\?.*)?$"),
                          callback=self._list_messages)
        rsps.add_callback("GET", re.compile(re.escape(API) + r"/Calls\.json(\?.*)?$"),
                          callback=self._list_calls)
        rsps.add_callback("GET", re.compile(re.escape(API) + r"/Messages/(\w+)/Media\.json(\?.*)?$"),
                          callback=self._list_media)
        rsps.add_callback("GET", re.compile(re.escape(MESSAGING) + r"/PhoneNumbers(\?.*)?$"),
                          callback=self._service_numbers)
        return self

    # -- what Twilio received: the records its REST lists return (reconciliation) ------

    def inbound(self, sender: str, body: str, sent_at: datetime, to: str = FROM,
                media: tuple[str, ...] = (), sid: str | None = None) -> str:
        """A text Twilio received at `sent_at`, whatever became of its webhook."""
        sid = sid or ("MM" if media else "SM") + uuid.uuid4().hex
        stamp = rfc2822(sent_at)
        record = {"account_sid": ACCOUNT, "api_version": "2010-04-01", "body": body,
                  "date_created": stamp, "date_sent": stamp, "date_updated": stamp,
                  "direction": "inbound", "error_code": None, "error_message": None,
                  "from": sender, "messaging_service_sid": None, "num_media": str(len(media)),
                  "num_segments": "1", "price": None, "price_unit": "USD", "sid": sid,
                  "status": "received",
                  "subresource_uris": {"media": f"{BASE}/Messages/{sid}/Media.json"},
                  "to": to, "uri": f"{BASE}/Messages/{sid}.json"}
        self.r.zadd(P + "inbound", {json.dumps(record): sent_at.timestamp()})
        for i, content_type in enumerate(media):
            self.r.rpush(P + f"media:{sid}", json.dumps({
                "account_sid": ACCOUNT, "content_type": content_type, "date_created": stamp,
                "date_updated": stamp, "parent_sid": sid, "sid": f"ME{sid[2:-2]}{i:02d}",
                "uri": f"{BASE}/Messages/{sid}/Media/ME{sid[2:-2]}{i:02d}.json"}))
        return sid

    def inbound_call(self, caller: str, started: datetime, status: str = "completed",
                     duration: int = 12, to: str = FROM, sid: str | None = None) -> str:
        """A call Twilio took at `started`, whatever became of its webhooks."""
        sid = sid or "CA" + uuid.uuid4().hex
        stamp = rfc2822(started)
        record = {"account_sid": ACCOUNT, "annotation": None, "answered_by": None,
                  "api_version": "2010-04-01", "caller_name": None, "date_created": stamp,
                  "date_updated": stamp, "direction": "inbound", "duration": str(duration),
                  "end_time": stamp if status != "in-progress" else None, "forwarded_from": None,
                  "from": caller, "from_formatted": caller, "group_sid": None,
                  "parent_call_sid": None, "phone_number_sid": "PN" + "3" * 32, "price": None,
                  "price_unit": "USD", "queue_time": "0", "sid": sid, "start_time": stamp,
                  "status": status, "subresource_uris": {
                      "recordings": f"{BASE}/Calls/{sid}/Recordings.json",
                      "notifications": f"{BASE}/Calls/{sid}/Notifications.json"},
                  "to": to, "to_formatted": to, "trunk_sid": None, "uri": f"{BASE}/Calls/{sid}.json"}
        self.r.zadd(P + "calls", {json.dumps(record): started.timestamp()})
        return sid

    def add_service_numbers(self, *numbers: str) -> None:
        for n in numbers:
            self.r.rpush(P + "service-numbers", n)

    def fail_next_list(self, status: int, times: int = 1, retry_after: int | None = None,
                       exception: str | None = None) -> None:
        """The next `times` list requests answer `status` (503, 429…), or raise `exception`
        (a `requests.exceptions` name: ReadTimeout, ConnectionError…)."""
        for _ in range(times):
            self.r.rpush(P + "list-fail", json.dumps({"status": status, "retry_after": retry_after,
                                                      "exception": exception}))

    def reads(self) -> list[str]:
        """Every list request made (path and query), in order."""
        return [u.decode() for u in self.r.lrange(P + "reads", 0, -1)]

    def _read(self, request) -> tuple[dict, tuple | None]:
        parts = urlsplit(request.url)
        self.r.rpush(P + "reads", parts.path + ("?" + parts.query if parts.query else ""))
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        fail = self.r.lpop(P + "list-fail")
        if fail:
            fail = json.loads(fail)
            if fail.get("exception"):
                raise getattr(requests.exceptions, fail["exception"])("mocked")
            headers = {"Content-Type": "application/json"}
            if fail["retry_after"]:
                headers["Retry-After"] = str(fail["retry_after"])
            code, message = {429: (20429, "Too Many Requests"),
                             401: (20003, "Authenticate")}.get(fail["status"],
                                                               (20500, "Internal Server Error"))
            return query, (fail["status"], headers, json.dumps({
                "code": code, "message": message,
                "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": fail["status"]}))
        return query, None

    def _page(self, request, key: str, records: list[dict], path: str, filters: dict):
        """Twilio's 2010 list envelope, paged by PageSize and PageToken (newest first)."""
        query = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
        size = int(query.get("PageSize", 50))
        page = int(query.get("Page", 0))
        start = 0
        token = query.get("PageToken", "")
        if token:  # the last record of the page before
            sids = [r["sid"] for r in records]
            start = sids.index(token[4:]) + 1 if token[4:] in sids else len(records)
        chunk = records[start:start + size]
        base = {**filters, "PageSize": size}

        def uri(**extra):
            return f"{path}?{urlencode({**base, **extra})}"

        more = start + size < len(records)
        body = {"end": start + len(chunk) - 1 if chunk else start, key: chunk,
                "first_page_uri": uri(Page=0),
                "next_page_uri": uri(Page=page + 1, PageToken="PA" + key[:2].upper()
                                     + chunk[-1]["sid"]) if more else None,
                "page": page, "page_size": size,
                "previous_page_uri": uri(Page=page - 1) if page else None,
                "start": start, "uri": uri(Page=page, **({"PageToken": token} if token else {}))}
        return 200, {"Content-Type": "application/json"}, json.dumps(body)

    def _dated(self, zset: str, query: dict, field: str) -> tuple[list[dict], dict]:
        """Records of `zset`, newest first, filtered as Twilio documents: To, and a date
        inequality at day granularity (`DateSent>` / `StartTime>`: on and after that day)."""
        after = query.get(f"{field}>")
        since = date.fromisoformat(after[:10]) if after else None
        records = [json.loads(m) for m in self.r.zrevrange(zset, 0, -1)]
        out = []
        for rec in records:
            stamp = rec["date_sent"] if field == "DateSent" else rec["start_time"]
            day = datetime.strptime(stamp, "%a, %d %b %Y %H:%M:%S %z").date()
            if query.get("To") and rec["to"] != query["To"]:
                continue
            if since and day < since:
                continue
            out.append(rec)
        filters = {k: v for k, v in query.items() if k in ("To", f"{field}>")}
        return out, filters

    def _list_messages(self, request):
        return self._list_dated(request, "inbound", "DateSent", "messages", "Messages")

    def _list_calls(self, request):
        return self._list_dated(request, "calls", "StartTime", "calls", "Calls")

    def _list_dated(self, request, stored: str, field: str, key: str, resource: str):
        """Twilio's list of messages or calls, filtered by `To` and `<field>>`, paged."""
        query, fail = self._read(request)
        if fail:
            return fail
        records, filters = self._dated(P + stored, query, field)
        return self._page(request, key, records, f"{BASE}/{resource}.json", filters)

    def _list_media(self, request):
        query, fail = self._read(request)
        if fail:
            return fail
        sid = re.search(r"/Messages/(\w+)/Media", request.url).group(1)
        records = [json.loads(m) for m in self.r.lrange(P + f"media:{sid}", 0, -1)]
        return self._page(request, "media_list", records, f"{BASE}/Messages/{sid}/Media.json", {})

    def _service_numbers(self, request):
        query, fail = self._read(request)
        if fail:
            return fail
        url = f"{MESSAGING}/PhoneNumbers?PageSize={query.get('PageSize', 50)}&Page=0"
        numbers = [{"sid": "PN" + uuid.uuid5(uuid.NAMESPACE_URL, n.decode()).hex,
                    "account_sid": ACCOUNT, "service_sid": SERVICE,
                    "date_created": "2026-01-05T18:00:00Z", "date_updated": "2026-01-05T18:00:00Z",
                    "phone_number": n.decode(), "country_code": "US", "capabilities": ["SMS", "Voice"],
                    "url": f"{MESSAGING}/PhoneNumbers/PN{uuid.uuid5(uuid.NAMESPACE_URL, n.decode()).hex}"}
                   for n in self.r.lrange(P + "service-numbers", 0, -1)]
        return 200, {"Content-Type": "application/json"}, json.dumps({
            "phone_numbers": numbers,
            "meta": {"page": 0, "page_size": int(query.get("PageSize", 50)), "first_page_url": url,
                     "previous_page_url": None, "next_page_url": None, "url": url,
                     "key": "phone_numbers"}})

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


def rfc2822(when: datetime) -> str:
    """Twilio's date format in the 2010 API: `Mon, 30 Nov 2026 14:02:00 +0000`."""
    return when.astimezone(timezone.utc).strftime("%a, %d %b %Y %H:%M:%S +0000")


def media_url(message_sid: str, media_sid: str | None = None) -> str:
    media_sid = media_sid or "ME" + uuid.uuid4().hex
    return f"{API}/Messages/{message_sid}/Media/{media_sid}"


def is_twilio_url(url: str) -> bool:
    return bool(re.match(r"https://api\.twilio\.com/", url))
