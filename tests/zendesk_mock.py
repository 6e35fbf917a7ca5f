"""Zendesk's HTTP API, mocked with `responses` in its real JSON shapes.

The real zenpy client talks to it. Its state lives in the tests' private
Redis, so worker processes forked by a test share one "Zendesk" with the
test itself. Search deliberately lags: users Hotline creates are invisible to
search, as they are in Zendesk for up to minutes after creation.
"""
from __future__ import annotations

import json
import re
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlparse

import requests
import responses

SUB = "acme"
BASE = f"https://{SUB}.zendesk.com/api/v2"
P = "zdmock:"


def iso(dt: datetime | None = None) -> str:
    return (dt or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")


class ZendeskMock:
    """Users, tickets, comments, audits and uploads, as the Zendesk API returns them."""

    def __init__(self, conn):
        self.r = conn
        # Scripted failures: list of (method, path regex, status|exception, headers, apply)
        self.failures_key = P + "failures"

    # -- state -------------------------------------------------------------
    def _next(self, kind: str) -> int:
        return int(self.r.incr(P + "seq:" + kind)) + {"user": 9000, "attachment": 3000, "ticket": 100,
                                                      "audit": 5000, "comment": 7000}.get(kind, 0)

    def _get(self, kind: str, oid) -> dict | None:
        raw = self.r.hget(P + kind, str(oid))
        return json.loads(raw) if raw else None

    def _put(self, kind: str, obj: dict) -> None:
        self.r.hset(P + kind, str(obj["id"]), json.dumps(obj))

    def all(self, kind: str) -> list[dict]:
        found = sorted((json.loads(v) for v in self.r.hvals(P + kind)), key=lambda o: o["id"])
        return [o for o in found if not (kind == "user" and o["id"] == self.API_USER)]

    def calls(self) -> list[str]:
        return [c.decode() for c in self.r.lrange(P + "calls", 0, -1)]

    def ticket_writes(self) -> int:
        return sum(1 for c in self.calls() if re.match(r"(POST|PUT) /tickets", c))

    def comments(self, ticket_id: int) -> list[dict]:
        return [c for c in self.all("comment") if c["ticket_id"] == ticket_id]

    def texts(self, ticket_id: int) -> list[str]:
        """Public comments' bodies, oldest first."""
        return [c["body"] for c in self.comments(ticket_id) if c["public"]]

    def public(self, ticket_id: int) -> list[dict]:
        return [c for c in self.comments(ticket_id) if c["public"]]

    def notes(self, ticket_id: int) -> list[str]:
        """Internal notes on a ticket, but the triage summary every new ticket gets."""
        return [c["body"] for c in self.comments(ticket_id)
                if not c["public"] and not c["body"].startswith("Hotline triage:")]

    def add_user(self, phone: str, name: str = "Existing Customer", searchable: bool = True) -> dict:
        user = self._user(name, phone)
        user["_searchable"] = searchable
        self._put("user", user)
        return user

    def add_ticket(self, requester_id: int, status: str = "open", updated: datetime | None = None,
                   subject: str = "Earlier case") -> dict:
        ticket = self._ticket({"requester_id": requester_id, "subject": subject,
                               "tags": ["hotline", "sms"]}, status=status)
        ticket["updated_at"] = iso(updated)
        self._put("ticket", ticket)
        return ticket

    API_USER = 1  # the user Hotline's token acts as

    def add_agent(self, name: str = "Alex Agent") -> dict:
        agent = self._user(name, None)
        agent["role"] = "agent"
        self._put("user", agent)
        return agent

    def agent_comment(self, ticket_id: int, author_id: int, body: str, public: bool = True,
                      attachments: list[dict] | None = None) -> dict:
        """What an agent's reply in Zendesk leaves behind."""
        t = self._get("ticket", ticket_id)
        audit = self._comment_and_audit(t, {"body": body, "public": public, "author_id": author_id},
                                        None, None)
        comment = self._get("comment", audit["events"][0]["id"])
        comment["attachments"] = attachments or []
        self._put("comment", comment)
        self.set_ticket(ticket_id, status="pending" if public else t["status"])
        return comment

    def set_ticket(self, ticket_id: int, **changes) -> None:
        t = self._get("ticket", ticket_id)
        t.update(changes)
        t["updated_at"] = iso(datetime.now(timezone.utc) + timedelta(seconds=int(self.r.incr(P + "tick"))))
        self._put("ticket", t)

    def fail_next(self, method: str, path_re: str, status: int | None = None, *,
                  headers: dict | None = None, exception: str | None = None,
                  apply_first: bool = False, times: int = 1, body: dict | None = None) -> None:
        """Make the next `times` matching calls fail with `status` or a network `exception`.

        `apply_first`: carry the request out, then fail (an unknown outcome).
        """
        for _ in range(times):
            self.r.rpush(self.failures_key, json.dumps({
                "method": method, "path": path_re, "status": status, "headers": headers or {},
                "exception": exception, "apply": apply_first, "body": body}))

    # -- shapes --------------------------------------------------------------
    def _user(self, name: str, phone: str | None) -> dict:
        uid = self._next("user")
        now = iso()
        return {"id": uid, "url": f"{BASE}/users/{uid}.json", "name": name, "email": None,
                "created_at": now, "updated_at": now, "time_zone": "Pacific Time (US & Canada)",
                "iana_time_zone": "America/Los_Angeles", "phone": phone,
                "shared_phone_number": False, "photo": None, "locale_id": 1, "locale": "en-US",
                "organization_id": None, "role": "end-user", "verified": False,
                "external_id": None, "tags": [], "alias": None, "active": True, "shared": False,
                "shared_agent": False, "last_login_at": None, "two_factor_auth_enabled": None,
                "signature": None, "details": None, "notes": None, "role_type": None,
                "custom_role_id": None, "moderator": False, "ticket_restriction": "requested",
                "only_private_comments": False, "restricted_agent": True, "suspended": False,
                "default_group_id": None, "report_csv": False, "user_fields": {}}

    def _ticket(self, data: dict, status: str = "new") -> dict:
        tid = self._next("ticket")
        now = iso()
        comment = data.get("comment") or {}
        return {"url": f"{BASE}/tickets/{tid}.json", "id": tid,
                "external_id": data.get("external_id"),
                "via": {"channel": "api", "source": {"from": {}, "to": {}, "rel": None}},
                "created_at": now, "updated_at": now, "generated_timestamp": int(time.time()),
                "type": None, "subject": data.get("subject"), "raw_subject": data.get("subject"),
                "description": comment.get("body", ""), "priority": data.get("priority"),
                "status": status,
                "recipient": None, "requester_id": data.get("requester_id"),
                "submitter_id": data.get("submitter_id", data.get("requester_id")),
                "assignee_id": None, "organization_id": None, "group_id": data.get("group_id"),
                "collaborator_ids": [], "follower_ids": [], "email_cc_ids": [],
                "forum_topic_id": None, "problem_id": None, "has_incidents": False,
                "is_public": True, "due_at": None, "tags": data.get("tags", []),
                "custom_fields": data.get("custom_fields", []), "satisfaction_rating": None,
                "sharing_agreement_ids": [], "custom_status_id": 1, "encoded_id": f"X{tid}",
                "fields": [], "followup_ids": [], "ticket_form_id": 1, "brand_id": 1,
                "allow_channelback": False, "allow_attachments": True,
                "from_messaging_channel": False,
                "via_followup_source_id": data.get("via_followup_source_id")}

    def _comment_and_audit(self, ticket: dict, comment: dict, metadata: dict | None,
                           status_change: str | None) -> dict:
        cid, aid = self._next("comment"), self._next("audit")
        author = comment.get("author_id") or self.API_USER
        stored = {"id": cid, "ticket_id": ticket["id"], "type": "Comment", "author_id": author,
                  "body": comment.get("body", ""), "html_body": f"<p>{comment.get('body', '')}</p>",
                  "plain_body": comment.get("body", ""), "public": comment.get("public", True),
                  "attachments": [{"token": t} for t in comment.get("uploads", [])],
                  "audit_id": aid, "via": {"channel": "api"},
                  "created_at": iso(datetime.now(timezone.utc) + timedelta(seconds=int(self.r.incr(P + "tick")))),
                  "metadata": {"system": {}, "custom": {}}}
        self._put("comment", stored)
        events = [{k: v for k, v in stored.items() if k not in ("ticket_id", "audit_id")}]
        if status_change:
            events.append({"id": self._next("audit"), "type": "Change", "field_name": "status",
                           "value": status_change, "previous_value": ticket["status"]})
        audit = {"id": aid, "ticket_id": ticket["id"], "created_at": iso(), "author_id": author,
                 "metadata": {"system": {"client": "zenpy"}, "custom": metadata or {}},
                 "events": events, "via": {"channel": "api", "source": {}}}
        self._put("audit", audit)
        return audit

    # -- HTTP ----------------------------------------------------------------
    def _log(self, request) -> str:
        path = urlparse(request.url).path.replace("/api/v2", "").replace(".json", "")
        path = re.sub(r"/\d+", "/{id}", path)
        line = f"{request.method} {path}"
        self.r.rpush(P + "calls", line)
        return line

    def _scripted(self, request):
        """A scripted failure for this call, if one is waiting (removed once used)."""
        path = urlparse(request.url).path
        for raw in self.r.lrange(self.failures_key, 0, -1):
            f = json.loads(raw)
            if f["method"] == request.method and re.search(f["path"], path):
                self.r.lrem(self.failures_key, 1, raw)
                return f
        return None

    def slow_down(self, seconds: float) -> None:
        """Make every call take this long, as a real Zendesk does (50-300 ms)."""
        self.r.set(P + "latency", seconds)

    def limit(self, per_minute: int) -> None:
        """Enforce an account limit as Zendesk does: 429 with Retry-After past
        `per_minute` requests in a minute, and the rate-limit headers on every answer."""
        self.r.set(P + "limit", per_minute)

    def rejected(self) -> int:
        """How many calls got a 429 from the account limit."""
        return int(self.r.get(P + "rejected") or 0)

    def _limited(self) -> tuple[dict, bool]:
        """The rate-limit headers for this call, and whether it is over the limit."""
        limit = self.r.get(P + "limit")
        if not limit:
            return {}, False
        now = time.time()
        window = P + f"window:{int(now // 60)}"
        used = self.r.incr(window)
        self.r.expire(window, 120)
        left = max(0, int(limit) - used)
        reset = str(max(1, int(60 - now % 60)))
        headers = {"X-Rate-Limit": limit.decode(), "X-Rate-Limit-Remaining": str(left),
                   "ratelimit-reset": reset}
        if used > int(limit):
            self.r.incr(P + "rejected")
            return {**headers, "Retry-After": reset}, True
        return headers, False

    def _handle(self, request, handler):
        self._log(request)
        latency = self.r.get(P + "latency")
        if latency:
            time.sleep(float(latency))
        limits, over = self._limited()
        if over:
            return 429, limits, json.dumps({"error": "APIRateLimitExceeded"})
        failure = self._scripted(request)
        if failure and not failure["apply"]:
            if failure["exception"]:
                raise getattr(requests.exceptions, failure["exception"])("mocked")
            return failure["status"], failure["headers"], json.dumps(failure["body"] or {
                "error": "Mocked", "description": f"mocked {failure['status']}"})
        result = handler(request)
        if failure and failure["apply"]:
            if failure["status"]:  # carried out, then a proxy's error page
                return failure["status"], {"Content-Type": "text/html"}, "<html>502 Bad Gateway</html>"
            raise getattr(requests.exceptions, failure["exception"] or "ReadTimeout")("mocked")
        status, body = result
        return status, {"Content-Type": "application/json; charset=utf-8", **limits}, json.dumps(body)

    def install(self, rsps: responses.RequestsMock) -> "ZendeskMock":
        if not self._get("user", self.API_USER):  # the user Hotline's token acts as: an admin
            me = self._user("Hotline API", None)
            me.update(id=self.API_USER, role="admin", email="hotline@acme.test")
            self._put("user", me)
        routes = [
            ("GET", r"/search\.json", self.search),
            ("GET", r"/users/(\d+)/tickets/requested\.json", self.requested),
            ("POST", r"/users\.json", self.create_user),
            ("POST", r"/users/create_or_update\.json", self.create_or_update_user),
            ("GET", r"/tickets/(\d+)/audits\.json", self.list_audits),
            ("GET", r"/tickets/(\d+)/comments\.json", self.list_comments),
            ("GET", r"/users/show_many\.json", self.show_many_users),
            ("GET", r"/users/me\.json", self.me),
            ("GET", r"/tickets/(\d+)\.json", self.show_ticket),
            ("PUT", r"/tickets/(\d+)\.json", self.update_ticket),
            ("GET", r"/tickets\.json", self.list_tickets),
            ("POST", r"/tickets\.json", self.create_ticket),
            ("POST", r"/uploads\.json", self.upload),
        ]
        for method, path, handler in routes:
            rsps.add_callback(method, re.compile(re.escape(BASE) + path + r"(\?.*)?$"),
                              callback=lambda req, h=handler: self._handle(req, h))
        return self

    @staticmethod
    def _json(request) -> dict:
        return json.loads(request.body or "{}")

    @staticmethod
    def _id(request) -> int:
        return int(re.search(r"/tickets/(\d+)", request.url).group(1))

    def search(self, request):
        q = parse_qs(urlparse(request.url).query)["query"][0]
        phone = re.search(r"phone:(\S+)", q)
        results = []
        if "type:user" in q and phone:
            for u in self.all("user"):
                if u.get("_searchable") and (u["phone"] or "").lstrip("+") == phone.group(1):
                    results.append({**u, "result_type": "user"})
        return 200, {"results": results, "facets": None, "next_page": None,
                     "previous_page": None, "count": len(results)}

    def requested(self, request):
        uid = int(re.search(r"/users/(\d+)/", request.url).group(1))
        found = [t for t in self.all("ticket") if t["requester_id"] == uid]
        return 200, {"tickets": found, "next_page": None, "previous_page": None,
                     "count": len(found)}

    def create_user(self, request):
        data = self._json(request)["user"]
        user = self._user(data["name"], data.get("phone"))
        user["email"] = data.get("email")
        user["_searchable"] = False  # search lags creation
        self._put("user", user)
        return 201, {"user": user}

    def create_or_update_user(self, request):
        """Zendesk's create-or-update: the user with this email or external id, else a new one
        (201 created, 200 updated)."""
        data = self._json(request)["user"]
        for user in self.all("user"):
            if (data.get("external_id") and user.get("external_id") == data["external_id"]) or \
                    (data.get("email") and user.get("email") == data["email"]):
                user.update({k: v for k, v in data.items() if k in ("name", "phone", "email")})
                self._put("user", user)
                return 200, {"user": user}
        status, body = self.create_user(request)
        body["user"]["external_id"] = data.get("external_id")
        self._put("user", body["user"])
        return status, body

    def show_ticket(self, request):
        t = self._get("ticket", self._id(request))
        if not t:
            return 404, {"error": "RecordNotFound", "description": "Not found"}
        if "users" in parse_qs(urlparse(request.url).query).get("include", [""])[0].split(","):
            ids = {t["requester_id"], t["submitter_id"], t.get("assignee_id")} - {None}
            users = [u for u in (self._get("user", i) for i in sorted(ids)) if u]
            return 200, {"ticket": t, "users": users}
        return 200, {"ticket": t}

    def list_tickets(self, request):
        ext = parse_qs(urlparse(request.url).query).get("external_id", [None])[0]
        found = [t for t in self.all("ticket") if ext and t["external_id"] == ext]
        return 200, {"tickets": found, "next_page": None, "previous_page": None,
                     "count": len(found)}

    def list_comments(self, request):
        tid = self._id(request)
        found = [{k: v for k, v in c.items() if k != "ticket_id"} for c in self.comments(tid)]
        return 200, {"comments": found, "next_page": None, "previous_page": None,
                     "count": len(found)}

    def show_many_users(self, request):
        ids = parse_qs(urlparse(request.url).query)["ids"][0].split(",")
        users = [u for u in (self._get("user", i) for i in ids) if u]
        return 200, {"users": users, "next_page": None, "previous_page": None, "count": len(users)}

    def me(self, request):
        return 200, {"user": self._get("user", self.API_USER)}

    def list_audits(self, request):
        tid = self._id(request)
        audits = [a for a in self.all("audit") if a["ticket_id"] == tid]
        return 200, {"audits": audits, "next_page": None, "previous_page": None,
                     "count": len(audits)}

    def create_ticket(self, request):
        data = self._json(request)["ticket"]
        source = data.get("via_followup_source_id")
        if source:
            src = self._get("ticket", source)
            if not src or src["status"] != "closed":
                return 422, {"error": "RecordInvalid", "description": "Record validation errors",
                             "details": {"base": [{"description": "Follow-up source must be closed"}]}}
        ticket = self._ticket(data)
        self._put("ticket", ticket)
        audit = self._comment_and_audit(ticket, data.get("comment") or {}, data.get("metadata"), None)
        return 201, {"ticket": ticket, "audit": audit}

    def update_ticket(self, request):
        tid = self._id(request)
        t = self._get("ticket", tid)
        if not t:
            return 404, {"error": "RecordNotFound", "description": "Not found"}
        data = self._json(request)["ticket"]
        if t["status"] == "closed":
            return 422, {"error": "RecordInvalid", "description": "Record validation errors",
                         "details": {"status": [{"description": "Status: closed prevents ticket update"}]}}
        if data.get("safe_update") and data.get("updated_stamp") != t["updated_at"]:
            return 409, {"error": "UpdateConflict",
                         "description": "Safe Update prevented the update due to outdated ticket data."}
        new_status = data.get("status")
        audit = self._comment_and_audit(t, data.get("comment") or {}, data.get("metadata"), new_status)
        if new_status:
            t["status"] = new_status
        if data.get("priority"):
            t["priority"] = data["priority"]
        tags = [x for x in t["tags"] if x not in data.get("remove_tags", [])]
        t["tags"] = tags + [x for x in data.get("additional_tags", []) if x not in tags]
        # Zendesk stamps to the second; make each write's stamp distinct.
        t["updated_at"] = iso(datetime.now(timezone.utc) + timedelta(seconds=int(self.r.incr(P + "tick"))))
        self._put("ticket", t)
        return 200, {"ticket": t, "audit": audit}

    def upload(self, request):
        name = parse_qs(urlparse(request.url).query).get("filename", ["file"])[0]
        token = f"tok{self._next('upload')}"
        self.r.hset(P + "uploads", token, json.dumps({
            "filename": name, "content_type": request.headers.get("Content-Type"),
            "size": len(request.body or b"")}))
        att = {"id": self._next("attachment"), "file_name": name,
               "content_url": f"https://{SUB}.zendesk.com/attachments/token/{token}/?name={name}",
               "content_type": request.headers.get("Content-Type"),
               "size": len(request.body or b""), "inline": False, "deleted": False}
        return 201, {"upload": {"token": token, "expires_at": iso(datetime.now(timezone.utc) + timedelta(days=3)),
                                "attachments": [att], "attachment": att}}

    def uploads(self) -> dict:
        return {k.decode(): json.loads(v) for k, v in self.r.hgetall(P + "uploads").items()}
