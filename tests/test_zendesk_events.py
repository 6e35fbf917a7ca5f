"""`POST /zendesk/events`: signed fixtures verify, one changed byte fails, stale or unsigned
is 403, malformed is 400, ignored or unknown is 204, a known ticket is queued once."""
import base64
import hashlib
import hmac
import json
from datetime import datetime, timedelta, timezone

import pytest

from bot import keys
from handlers.zendesk import fresh, signature_valid
from tests.conftest import FIXTURES, SECRET



def signed_fixture(name: str) -> tuple[bytes, dict, str]:
    body = (FIXTURES / "zendesk" / f"{name}.body.json").read_bytes()
    meta = json.loads((FIXTURES / "zendesk" / f"{name}.meta.json").read_text())
    return body, meta["headers"], meta["signing_secret"].split(" ")[0]


@pytest.mark.parametrize("name", ["trigger_ticket_update", "user_group_membership_created"])
def test_signed_fixtures_verify_and_one_changed_byte_fails(name):
    body, headers, secret = signed_fixture(name)
    ts, sig = headers["X-Zendesk-Webhook-Signature-Timestamp"], headers["X-Zendesk-Webhook-Signature"]

    assert signature_valid(secret, ts, body, sig)
    for i in (0, len(body) // 2, len(body) - 1):
        changed = body[:i] + bytes([body[i] ^ 1]) + body[i + 1:]
        assert not signature_valid(secret, ts, changed, sig)
    assert not signature_valid(secret, ts + "5", body, sig)
    # The secret is the key exactly as Zendesk shows it, not base64-decoded.
    assert not signature_valid(base64.b64decode(secret).decode(), ts, body, sig)


def test_timestamps_older_or_newer_than_five_minutes_are_stale():
    now = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
    assert fresh("2026-11-24T11:56:00Z", now) and fresh("2026-11-24T12:04:00Z", now)
    assert not fresh("2026-11-24T11:54:59Z", now) and not fresh("2026-11-24T12:05:01Z", now)
    assert not fresh("1234", now) and not fresh("", now)


def post_event(client, payload, *, secret=SECRET, when=None, raw: bytes | None = None, headers=None):
    body = raw if raw is not None else json.dumps(payload).encode()
    ts = (when or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")
    sig = base64.b64encode(hmac.new(secret.encode(), ts.encode() + body, hashlib.sha256).digest()).decode()
    return client.post("/zendesk/events", data=body, content_type="application/json",
                       headers={"X-Zendesk-Webhook-Signature": sig,
                                "X-Zendesk-Webhook-Signature-Timestamp": ts, **(headers or {})})


def comment_added(ticket_id: int, event_id: str = "01HEVENT0001") -> dict:
    return {"type": "zen:event-type:ticket.comment_added", "account_id": 12514403, "id": event_id,
            "time": "2026-11-24T05:33:18Z", "zendesk_event_version": "2022-11-06",
            "subject": f"zen:ticket:{ticket_id}",
            "detail": {"id": str(ticket_id), "status": "PENDING", "requester_id": "9001"},
            "event": {"comment": {"id": "7001", "body": "Hi", "is_public": True,
                                  "author": {"id": "555", "is_staff": True, "name": "Alex"}}}}


def test_comment_added_on_a_known_ticket_is_queued_once(zd_client, conn):
    conn.hset(keys.ticket(4321), "conv", "c1")
    first = post_event(zd_client, comment_added(4321))
    again = post_event(zd_client, comment_added(4321))

    assert first.status_code == 200 and first.json == {"status": "queued", "ticket_id": 4321}
    assert again.status_code == 200 and again.json["status"] == "duplicate"
    assert conn.llen("rq:queue:hotline") == 1


def test_documented_trigger_body_is_accepted(zd_client, conn):
    conn.hset(keys.ticket(12345), "conv", "c1")
    resp = post_event(zd_client, {"ticket_id": "12345", "updated_at": "2026-11-24T05:00:00Z"},
                      headers={"X-Zendesk-Webhook-Invocation-Id": "8350205582"})
    assert resp.status_code == 200 and resp.json["ticket_id"] == 12345


def test_real_trigger_fixture_shape_with_ticketID_is_understood(zd_client, conn):
    body, _, _ = signed_fixture("trigger_ticket_update")
    conn.hset(keys.ticket(12345), "conv", "c1")
    resp = post_event(zd_client, None, raw=body)
    assert resp.status_code == 200 and resp.json["ticket_id"] == 12345


@pytest.mark.parametrize("kind", ["zen:event-type:ticket.created", "zen:event-type:ticket.subject_changed",
                                  "zen:event-type:user.active_changed"])
def test_event_types_hotline_ignores_get_204(zd_client, conn, kind):
    conn.hset(keys.ticket(4321), "conv", "c1")
    resp = post_event(zd_client, dict(comment_added(4321), type=kind))
    assert resp.status_code == 204 and conn.llen("rq:queue:hotline") == 0


def test_unknown_ticket_gets_204_and_nothing_queued(zd_client, conn):
    resp = post_event(zd_client, comment_added(999))
    assert resp.status_code == 204 and conn.llen("rq:queue:hotline") == 0


def test_unsigned_wrongly_signed_or_stale_is_403(zd_client, conn):
    conn.hset(keys.ticket(4321), "conv", "c1")
    body = json.dumps(comment_added(4321)).encode()
    unsigned = zd_client.post("/zendesk/events", data=body, content_type="application/json")
    wrong = post_event(zd_client, comment_added(4321), secret="not-the-secret")
    stale = post_event(zd_client, comment_added(4321), when=datetime.now(timezone.utc) - timedelta(minutes=6))
    assert [r.status_code for r in (unsigned, wrong, stale)] == [403, 403, 403]
    assert conn.llen("rq:queue:hotline") == 0 and not conn.keys("hotline:seen:*")


def test_no_secret_configured_refuses_everything(client, conn):
    conn.hset(keys.ticket(4321), "conv", "c1")
    assert post_event(client, comment_added(4321)).status_code == 403


@pytest.mark.parametrize("raw, reason", [(b"{not json", "not JSON"), (b"[1, 2]", "not a JSON object"),
                                         (b'{"hello": "world"}', "no ticket id")])
def test_malformed_bodies_are_400_with_reason(zd_client, conn, raw, reason):
    resp = post_event(zd_client, None, raw=raw)
    assert resp.status_code == 400 and reason in resp.json["reason"]


def test_status_and_priority_changes_on_a_known_ticket_are_queued(zd_client, conn):
    conn.hset(keys.ticket(4321), "conv", "c1")
    for i, kind in enumerate(("status_changed", "priority_changed")):
        event = dict(comment_added(4321, f"01HSTATUS{i}"), type=f"zen:event-type:ticket.{kind}")
        event["detail"]["status"] = "SOLVED"
        resp = post_event(zd_client, event)
        assert resp.status_code == 200 and resp.json == {"status": "queued", "ticket_id": 4321}
