"""Zendesk API calls per follow-up step (SPEC 7), counted on the real zenpy client against
the `responses`-mocked Zendesk of the tests, with real RQ workers and their scheduler, and
the clock moved by time-machine.

Each figure is the Zendesk requests made while that step ran (reads = GET, writes =
PUT/POST), and what the follow-ups add to the webhook sync of an SMS ticket.
"""
from __future__ import annotations

import re
import shutil
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import redis
import responses
import time_machine

import yaml

from bench.zendesk_calls import _quiet, _text
from bot import runtime
from bot.config import ROOT, Config
from tests.conftest import BASE_URL, RedisServer, run_due
from tests.twilio_mock import ACCOUNT, FROM, TOKEN
from tests.twilio_mock import TwilioMock
from tests.zendesk_mock import SUB, ZendeskMock

T0 = (datetime.now(timezone.utc) + timedelta(days=365)).replace(hour=18, minute=0, second=0,
                                                                 microsecond=0)


def _split(calls: list[str]) -> dict:
    reads = sum(1 for c in calls if c.startswith("GET"))
    return {"reads": reads, "writes": len(calls) - reads}


def _setup(tmp: Path, redis_url: str):
    """The app and worker runtime with the shipped settings (triage rules, on-call, follow-ups)."""
    data = yaml.safe_load((ROOT / "config" / "settings.yaml").read_text())
    data["business_hours"] = {d: ["00:00", "23:59"] for d in ("mon", "tue", "wed", "thu", "fri",
                                                             "sat", "sun")}
    data["conversations"]["coalesce_quiet_ms"] = 0
    (tmp / "settings.yaml").write_text(yaml.safe_dump(data, allow_unicode=True))
    cfg = Config(redis_url=redis_url, public_base_url=BASE_URL, twilio_account_sid=ACCOUNT,
                 twilio_auth_token=TOKEN, twilio_from_number=FROM, zendesk_subdomain=SUB,
                 zendesk_email="bench@acme.test", zendesk_api_token="t", spool_dir=tmp / "spool",
                 maintenance_interval=0, settings_path=tmp / "settings.yaml")
    from web import create_app

    app = create_app(cfg, maintenance=False)
    built = runtime.build(cfg)
    runtime.get = lambda: built
    return app.test_client()


def run() -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="hotline-bench-fu-"))
    server = RedisServer(tmp).start()
    conn = redis.Redis.from_url(server.url)
    out: dict = {}
    try:
        with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps, \
                time_machine.travel(T0, tick=True) as clock:
            zendesk = ZendeskMock(conn).install(rsps)
            TwilioMock(conn).install(rsps)
            client = _setup(tmp, server.url)
            _quiet()
            agent = zendesk.add_agent()

            def measure(name: str, hours: float = 0, minutes: float = 0) -> None:
                before = len(zendesk.calls())
                clock.shift(timedelta(hours=hours, minutes=minutes))
                run_due(conn)
                out[name] = _split(zendesk.calls()[before:])

            def hint(ticket_id: int) -> dict:
                from bot import jobs

                before = len(zendesk.calls())
                jobs.sync_ticket(ticket_id)
                return _split(zendesk.calls()[before:])

            # Escalation of an emergency, then its re-pages.
            _text(client, "+15550000101", "my dog got hit by a car")
            run_due(conn)
            measure("first_response_escalation_urgent", minutes=6)
            measure("repage", minutes=10)
            measure("repage_third_and_last", minutes=10)
            measure("after_three_pages", minutes=60)
            # Escalation of an ordinary ticket (priority raised, no page).
            _text(client, "+15550000102", "how do I change my account email")
            run_due(conn)
            measure("first_response_escalation_low", minutes=481)

            # Pending: the agent's reply arrives by webhook; reminder, last notice.
            _text(client, "+15550000103", "I need to file a claim for the vet bill")
            run_due(conn)
            claim = zendesk.all("ticket")[-1]["id"]
            zendesk.agent_comment(claim, agent["id"], "Please send us the vet invoice")
            out["sync_after_agent_reply"] = hint(claim)
            run_due(conn)
            measure("reminder", hours=24, minutes=1)
            measure("last_notice", hours=48)

            # Solved: survey, then the customer's answer.
            _text(client, "+15550000104", "how do I change my password")
            run_due(conn)
            solved = zendesk.all("ticket")[-1]["id"]
            zendesk.agent_comment(solved, agent["id"], "Done")
            zendesk.set_ticket(solved, status="solved")
            out["sync_after_solved"] = hint(solved)
            run_due(conn)
            measure("satisfaction_survey", hours=24, minutes=1)
            before = len(zendesk.calls())
            _text(client, "+15550000104", "5 thanks!")
            run_due(conn)
            out["survey_answer"] = _split(zendesk.calls()[before:])
            assert any(re.fullmatch(r"csat_5", t) for t in zendesk._get("ticket", solved)["tags"])
    finally:
        conn.close()
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def format_report(result: dict) -> str:
    lines = ["zendesk calls per follow-up step (reads / writes):"]
    lines += [f"  {key:<36}{value['reads']} / {value['writes']}" for key, value in result.items()]
    return "\n".join(lines)


if __name__ == "__main__":
    print(format_report(run()))
