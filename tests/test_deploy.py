"""deploy/: every Prometheus alert and Grafana query names only series Hotline exports."""
import json
import re

import yaml

from bot import metrics
from bot.config import ROOT
from tests.test_metrics import scrape

ALERTS = ROOT / "deploy" / "prometheus" / "hotline-alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "hotline-dashboard.json"

PROMQL_WORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
                "group_right", "bool", "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression reads: identifiers that are not a function
    call, an aggregation's label list, a label matcher, a keyword or a number."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)                 # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)                            # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)                           # ranges
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        rest = expr[match.end():].lstrip()
        if rest.startswith("(") or match.group().lower() in PROMQL_WORDS:
            continue
        names.add(match.group())
    return names


def alert_exprs() -> list[str]:
    rules = yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]
    for rule in rules:
        assert rule["alert"].startswith("Hotline") and rule["labels"]["severity"]
        assert rule["annotations"]["summary"]
    return [rule["expr"] for rule in rules]


def dashboard_exprs() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [t["expr"] for p in panels for t in p["targets"]]


def test_the_parser_finds_names_and_only_names():
    assert metric_names('histogram_quantile(0.95, max by (le) (rate(hotline_x_bucket{a="b"}[5m]))) > 5') \
        == {"hotline_x_bucket"}
    assert metric_names("up == 0 and hotline_y > 1") == {"up", "hotline_y"}


def test_every_query_names_an_exported_series():
    exported = metrics.exported_names()
    exprs = alert_exprs() + dashboard_exprs()
    assert len(exprs) >= 15
    for expr in exprs:
        names = metric_names(expr)
        assert names, expr
        assert names <= exported, f"{expr}: {names - exported} not exported"


def test_alerts_cover_what_operators_must_hear_about():
    names = set().union(*(metric_names(e) for e in alert_exprs()))
    assert {"hotline_queue_jobs", "hotline_inbound_to_desk_seconds_bucket",
            "hotline_api_requests_total", "hotline_followups_total",
            "hotline_spool_events"} <= names


def test_exported_names_are_what_metrics_really_shows(client, conn):
    metrics.event(conn, "sms", "accepted")
    metrics.api_request(conn, "zendesk", "ok")
    metrics.followup(conn, "first_response", "escalated")
    metrics.job_seconds(conn, "process_conversation", 0.2)
    metrics.inbound_to_desk(conn, [1.5])
    conn.rpush("rq:queue:hotline", "x")
    conn.sadd("rq:queues", "rq:queue:hotline")
    shown = {name for name, _labels in scrape(client)}
    assert shown == metrics.exported_names()
