"""What reconciliation costs (SPEC 10): Twilio requests per run, and the run's own time.

Counted on the real twilio-python client against the `responses`-mocked Twilio
of the tests (2010-API list envelopes, PageSize/PageToken paging, the date
filters at the day granularity Twilio documents), with a private Redis and the
real intake. No worker runs: this is the reconciliation itself, not the trip
to Zendesk (bench/zendesk_calls.py covers that).

Scenarios:
- quiet: a normal 5-minute run at a quiet hour; 300 texts and 40 calls earlier
  today, 2 texts and 1 call in the window, all of them webhooked already;
- first run: no mark yet, 24 h look-back over the same day;
- burst during an outage: 500 texts from 50 numbers (one in five an MMS) and
  30 calls in a 20-minute web-tier outage, none webhooked;
- messaging service: the quiet run with a Messaging Service of 3 numbers.
"""
from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import redis
import responses

from bot import keys, reconcile, runtime
from bot.config import Config
from bot.phone.twilio import TwilioPhone
from bench.zendesk_calls import _quiet
from tests.conftest import BASE_URL, RedisServer, always_open
from tests.twilio_mock import ACCOUNT, FROM, SERVICE, TOKEN, TwilioMock


def _config(tmp: Path, url: str, **over) -> Config:
    cfg = Config(redis_url=url, public_base_url=BASE_URL, twilio_account_sid=ACCOUNT,
                 twilio_auth_token=TOKEN, twilio_from_number=FROM, zendesk_subdomain="bench",
                 zendesk_email="bench@acme.test", zendesk_api_token="t", spool_dir=tmp / "spool",
                 maintenance_interval=0)
    return dataclasses.replace(always_open(cfg, tmp), **over)


def _scenario(tmp: Path, url: str, name: str) -> dict:
    conn = redis.Redis.from_url(url)
    conn.flushdb()  # the bench's private server
    now = datetime.now(timezone.utc)
    over = {"twilio_from_number": "", "twilio_messaging_service_sid": SERVICE} \
        if name == "messaging_service" else {}
    rt = runtime.build(_config(tmp, url, **over))
    _quiet()  # after build: it sets logging up again
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        twilio = TwilioMock(conn).install(rsps)
        to = FROM
        if name == "messaging_service":
            twilio.add_service_numbers(FROM, "+15005550010", "+15005550011")
        # Earlier today (outside the window): the day's traffic, all handled.
        day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        span = max(60.0, (now - timedelta(minutes=10) - day_start).total_seconds())
        for i in range(300):
            sid = twilio.inbound(f"+1555100{i % 100:04d}", "earlier",
                                 sent_at=day_start + timedelta(seconds=span * i / 300), to=to)
            conn.set(keys.seen(f"twilio:sms:{sid}"), "done")
        for i in range(40):
            sid = twilio.inbound_call(f"+1555100{i:04d}", day_start + timedelta(seconds=span * i / 40))
            conn.hset(keys.call(sid), "caller", "x")
        if name in ("quiet", "messaging_service"):
            conn.set(keys.RECONCILE_MARK, repr((now - timedelta(minutes=5)).timestamp()))
            for i in range(2):
                sid = twilio.inbound(f"+1555200{i:04d}", "now", sent_at=now - timedelta(minutes=1))
                conn.set(keys.seen(f"twilio:sms:{sid}"), "done")
            sid = twilio.inbound_call("+15552009999", now - timedelta(minutes=2))
            conn.hset(keys.call(sid), "caller", "x")
        elif name == "burst":
            conn.set(keys.RECONCILE_MARK, repr((now - timedelta(minutes=20)).timestamp()))
            for i in range(500):
                twilio.inbound(f"+1555300{i % 50:04d}", f"burst {i}",
                               sent_at=now - timedelta(seconds=1200 - 2.4 * i),
                               media=("image/jpeg",) if i % 5 == 0 else ())
            for i in range(30):
                twilio.inbound_call(f"+1555400{i:04d}", now - timedelta(seconds=1200 - 40 * i),
                                    status="no-answer", duration=0)
        started = time.perf_counter()
        report = reconcile.run(rt)
        seconds = time.perf_counter() - started
        reads = twilio.reads()
    conn.close()
    return {
        "requests": len(reads),
        "list_pages": sum(1 for r in reads if r.split("?")[0].endswith(("/Messages.json",
                                                                           "/Calls.json"))),
        "media_lists": sum(1 for r in reads if "/Media.json" in r),
        "service_lists": sum(1 for r in reads if "/PhoneNumbers" in r),
        "listed": report.messages_listed + report.calls_listed,
        "recovered": len(report.taken_in),
        "run_ms": round(seconds * 1000, 1),
    }


SCENARIOS = ("quiet", "first_run", "burst", "messaging_service")


def run() -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="hotline-bench-reconcile-"))
    server = RedisServer(tmp).start()
    try:
        return {name: _scenario(tmp, server.url, name) for name in SCENARIOS}
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def format_report(result: dict) -> str:
    lines = [f"reconciliation: Twilio requests per run (page size {TwilioPhone.LIST_PAGE_SIZE})",
             f"  {'scenario':<20}{'requests':>9}{'lists':>7}{'media':>7}{'listed':>8}"
             f"{'recovered':>11}{'run ms':>9}"]
    for name, r in result.items():
        lines.append(f"  {name:<20}{r['requests']:>9}{r['list_pages']:>7}{r['media_lists']:>7}"
                     f"{r['listed']:>8}{r['recovered']:>11}{r['run_ms']:>9}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(format_report(run()))
