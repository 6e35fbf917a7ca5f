"""`/metrics` (SPEC 11): the series SPEC 11 names, counted in Redis by every process."""
import dataclasses

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from rq import Queue

from bot import metrics
from tests.conftest import SECRET, post_twilio, run_jobs, sms, wait_for


def scrape(client, token: str | None = None) -> dict:
    """`/metrics` as {(series name, sorted labels): value}."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resp = client.get("/metrics", headers=headers)
    assert resp.status_code == 200, resp.data
    assert resp.content_type.startswith("text/plain; version=")
    return samples(resp.get_data(as_text=True))


def samples(text: str) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_an_sms_is_counted_from_webhook_to_desk(client, conn, open_rt, zendesk, twilio):
    params = sms("+15551230001", "a question about my booking")  # the ordinary queue
    assert post_twilio(client, "/twilio/sms", params).status_code == 200
    assert post_twilio(client, "/twilio/sms", params).status_code == 200       # Twilio's retry
    assert post_twilio(client, "/twilio/sms", sms("+15551230002", "x"),
                       signature="forged").status_code == 403
    Queue("hotline-urgent", connection=conn).enqueue("bot.jobs.sync_ticket", 1)

    before = scrape(client)
    assert before[("hotline_events_total", (("outcome", "accepted"), ("source", "sms")))] == 1
    assert before[("hotline_events_total", (("outcome", "duplicate"), ("source", "sms")))] == 1
    assert before[("hotline_events_total", (("outcome", "refused"), ("source", "sms")))] == 1
    # Every queue RQ knows, not a fixed list.
    assert before[("hotline_queue_jobs", (("queue", "hotline-replies"),))] == 1  # a new conversation's
    assert before[("hotline_queue_jobs", (("queue", "hotline-urgent"),))] == 1
    assert before[("hotline_spool_events", ())] == 0
    Queue("hotline-urgent", connection=conn).empty()

    run_jobs(conn)
    after = scrape(client)
    assert after[("hotline_queue_jobs", (("queue", "hotline"),))] == 0
    # A new conversation's job answers from the replies queue, then writes from `hotline`.
    assert after[("hotline_job_seconds_count", (("job", "process_conversation"),))] == 2
    assert after[("hotline_job_seconds_count", (("job", "after_write"),))] == 1  # the note
    assert after[("hotline_job_seconds_bucket", (("job", "process_conversation"), ("le", "+Inf")))] == 2
    assert after[("hotline_job_seconds_sum", (("job", "process_conversation"),))] > 0
    assert after[("hotline_inbound_to_desk_seconds_count", ())] == 1
    assert after[("hotline_inbound_to_desk_seconds_bucket", (("le", "3600.0"),))] == 1
    # search user, create user, create ticket, triage note: 4 Zendesk calls; one text.
    assert after[("hotline_api_requests_total", (("api", "zendesk"), ("outcome", "ok")))] == 4
    assert after[("hotline_api_requests_total", (("api", "twilio"), ("outcome", "ok")))] == 1


def test_zendesk_429_and_errors_are_counted_by_outcome(client, conn, open_rt, zendesk, twilio):
    zendesk.fail_next("POST", r"/tickets\.json", 429, headers={"Retry-After": "1"})
    post_twilio(client, "/twilio/sms", sms("+15551230001", "hello"))
    run_jobs(conn, future=True)
    twilio.fail_next_send(500, 20500)
    post_twilio(client, "/twilio/sms", sms("+15551230003", "hello again"))
    run_jobs(conn, future=True)

    seen = scrape(client)
    assert seen[("hotline_api_requests_total", (("api", "zendesk"), ("outcome", "rate_limited")))] == 1
    assert seen[("hotline_api_requests_total", (("api", "twilio"), ("outcome", "error")))] == 1
    assert seen[("hotline_inbound_to_desk_seconds_count", ())] == 2


def test_metrics_token_is_required_when_set(config, conn):
    from web import create_app

    client = create_app(dataclasses.replace(config, metrics_token="s3cret"),
                        maintenance=False).test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Basic s3cret"}).status_code == 401
    assert ("hotline_spool_events", ()) in scrape(client, token="s3cret")


def test_webhook_outcomes_for_other_sources(config, conn):
    from web import create_app

    client = create_app(dataclasses.replace(config, zendesk_webhook_secret=SECRET),
                        maintenance=False).test_client()
    # A delivery report for a text Hotline never sent: nothing to do.
    status = {"MessageSid": "SM" + "1" * 32, "MessageStatus": "delivered"}
    assert post_twilio(client, "/twilio/sms/status", status).status_code == 204
    assert client.post("/zendesk/events", data=b"{}").status_code == 403
    assert client.post("/sendgrid/inbound", data={}).status_code == 401
    seen = scrape(client)
    assert seen[("hotline_events_total", (("outcome", "ignored"), ("source", "status")))] == 1
    assert seen[("hotline_events_total", (("outcome", "refused"), ("source", "zendesk")))] == 1
    assert seen[("hotline_events_total", (("outcome", "refused"), ("source", "email")))] == 1
    # The call's own steps (menu…) are not events; the health check is nothing at all.
    client.get("/healthz")
    assert sum(v for (name, _), v in scrape(client).items() if name == "hotline_events_total") == 3


def test_a_count_redis_cannot_take_is_kept_and_sent_later(conn, redis_server):
    down = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    metrics.api_request(down, "zendesk", "error")        # tried, failed, kept
    metrics.event(down, "sms", "spooled")                # deferred; its flushes fail too
    assert conn.keys("hotline:metrics:*") == []

    def sent():
        metrics.flush(conn)  # (the background flush may hold them a moment: try again)
        return conn.hget("hotline:metrics:hotline_events_total", "sms\x1fspooled") == b"1"
    wait_for(sent, timeout=5, what="the kept counts to reach Redis")
    assert conn.hget("hotline:metrics:hotline_api_requests_total", "zendesk\x1ferror") == b"1"


def test_the_webhook_count_reaches_redis_without_waiting_for_a_scrape(client, conn):
    assert post_twilio(client, "/twilio/sms", sms("+15551230001", "hi")).status_code == 200
    wait_for(lambda: conn.hget("hotline:metrics:hotline_events_total", "sms\x1faccepted") == b"1",
             timeout=5, what="the background flush")


def test_followups_have_a_counter_to_call(client, conn):
    metrics.followup(conn, "first_response", "escalated")
    metrics.followup(conn, "first_response", "escalated")
    seen = scrape(client)
    assert seen[("hotline_followups_total", (("outcome", "escalated"), ("step", "first_response")))] == 2
    with pytest.raises(ValueError):
        metrics.inc(conn, "hotline_followups_total", "only-one-label")


def test_scrape_without_redis_still_shows_the_spool(config, tmp_path):
    from web import create_app

    cfg = dataclasses.replace(config, redis_url="redis://127.0.0.1:1/0")
    (tmp_path / "spool").mkdir()
    (tmp_path / "spool" / "0000000000001-abc.json").write_text("{}")
    client = create_app(cfg, maintenance=False).test_client()
    seen = scrape(client)
    assert seen[("hotline_spool_events", ())] == 1
    assert not any(name == "hotline_queue_jobs" for name, _ in seen)
