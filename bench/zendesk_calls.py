"""Zendesk API calls per message, counted on the real zenpy client against the
`responses`-mocked Zendesk of the tests (same JSON shapes, search lag included).

Scenarios: a new conversation; an existing one (ten texts, each written on its
own); a burst of ten texts 80 ms apart from a new number while a worker runs;
and, for honesty, an existing one where an agent touched the ticket before each
text (the safe update fails and Hotline re-reads the ticket).
"""
from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from pathlib import Path

import redis
import responses

from bot import runtime
from tests.conftest import (BASE_URL, RedisServer, always_open, run_jobs, sign, sms)
from tests.twilio_mock import ACCOUNT, FROM, TOKEN, TwilioMock
from tests.zendesk_mock import SUB, ZendeskMock


def _setup(tmp: Path, redis_url: str, coalesce_ms: int):
    from bot.config import Config

    cfg = Config(redis_url=redis_url, public_base_url=BASE_URL, twilio_account_sid=ACCOUNT,
                 twilio_auth_token=TOKEN, twilio_from_number=FROM, zendesk_subdomain=SUB,
                 zendesk_email="bench@acme.test", zendesk_api_token="t", spool_dir=tmp / "spool",
                 maintenance_interval=0)
    cfg = always_open(cfg, tmp, coalesce_ms=coalesce_ms)
    from web import create_app

    app = create_app(cfg, maintenance=False)
    built = runtime.build(cfg)
    runtime.get = lambda: built
    return app.test_client()


def _text(client, sender: str, body: str) -> None:
    params = sms(sender, body)
    resp = client.post("/twilio/sms", data=params,
                       headers={"X-Twilio-Signature": sign(BASE_URL + "/twilio/sms", params)})
    assert resp.status_code == 200, resp.status_code


def _quiet() -> None:
    """Keep worker and job logs out of the bench's table."""
    for name in ("rq", "rq.worker", "hotline"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.ERROR)
        logger.handlers = [logging.NullHandler()]
        logger.propagate = False


def run() -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="hotline-bench-"))
    server = RedisServer(tmp).start()
    conn = redis.Redis.from_url(server.url)
    out = {}
    try:
        with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
            zendesk = ZendeskMock(conn).install(rsps)
            TwilioMock(conn).install(rsps)

            client = _setup(tmp, server.url, coalesce_ms=0)
            _quiet()
            _text(client, "+15550000001", "my dog is hurt")
            run_jobs(conn)
            out["new_conversation"] = len(zendesk.calls())

            before = len(zendesk.calls())
            for i in range(10):
                _text(client, "+15550000001", f"update {i}")
                run_jobs(conn)
            out["existing_per_message"] = (len(zendesk.calls()) - before) / 10

            [ticket] = zendesk.all("ticket")
            before = len(zendesk.calls())
            for i in range(10):
                zendesk.set_ticket(ticket["id"], status="open")  # an agent touched it
                _text(client, "+15550000001", f"after agent {i}")
                run_jobs(conn)
            out["existing_after_agent_change_per_message"] = (len(zendesk.calls()) - before) / 10

            client = _setup(tmp, server.url, coalesce_ms=400)  # the shipped default
            _quiet()
            zendesk.slow_down(0.1)
            before_calls, before_writes = len(zendesk.calls()), zendesk.ticket_writes()

            def burst():
                for i in range(10):
                    _text(client, "+15550000002", f"burst {i}")
                    time.sleep(0.08)

            poster = threading.Thread(target=burst)
            poster.start()
            deadline = time.monotonic() + 30
            while (poster.is_alive() or conn.zcard("hotline:pending")) and time.monotonic() < deadline:
                run_jobs(conn)
                time.sleep(0.02)
            poster.join()
            run_jobs(conn)
            out["burst_of_ten_calls"] = len(zendesk.calls()) - before_calls
            out["burst_of_ten_ticket_writes"] = zendesk.ticket_writes() - before_writes
            out["burst_of_ten_per_message"] = out["burst_of_ten_calls"] / 10
    finally:
        conn.close()
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return out


if __name__ == "__main__":
    for k, v in run().items():
        print(f"{k:45} {v}")
