"""Shared fixtures: a private Redis server, the app, the runtime, Zendesk/Twilio over `responses`."""
from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import socket
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import redis
import responses
import yaml
from rq import Queue, SimpleWorker
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from twilio.request_validator import RequestValidator

from bot import metrics, runtime
from bot.config import ROOT, Config
from bot.jobs import FOLLOWUP_PREFIX
from tests import twilio_mock, zendesk_mock

FIXTURES = Path(__file__).parent / "fixtures"
BASE_URL = "https://hotline.example.com"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02, what: str = "condition"):
    """Poll `predicate` until it returns truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class RedisServer:
    """A private `redis-server` on a free port, so tests never touch anyone's data."""

    def __init__(self, tmp: Path, *extra: str):
        self.port = free_port()
        self.dir = tmp
        self.extra = extra
        self.proc = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        exe = shutil.which("redis-server")
        if not exe:
            raise RuntimeError("redis-server is not on PATH (Debian: apt-get install redis-server)")
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir), *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        wait_for(lambda: _pings(client), what="redis-server to start")
        return self

    def stop(self) -> None:
        if self.proc:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


def _pings(client) -> bool:
    try:
        return client.ping()
    except redis.ConnectionError:
        return False


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def conn(redis_server):
    client = redis.Redis.from_url(redis_server.url)
    metrics.forget_unsent()  # no count of an earlier test's arrives after the flush
    client.flushdb()  # the private server's own data, nobody else's
    yield client
    client.close()


def stored(conn, pattern: str = "*") -> list[bytes]:
    """The keys matching `pattern`, less the metrics' own counts (a refused request is counted)."""
    return sorted(k for k in conn.keys(pattern) if not k.startswith(b"hotline:metrics:"))


def test_settings(tmp_path: Path, **conversations) -> Path:
    """The shipped settings, with the burst-coalescing wait off unless asked for."""
    import yaml

    data = yaml.safe_load((ROOT / "config" / "settings.yaml").read_text())
    data["conversations"].update({"coalesce_quiet_ms": 0, **conversations})
    path = tmp_path / "settings.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def config(redis_server, tmp_path) -> Config:
    return Config(
        redis_url=redis_server.url,
        public_base_url=BASE_URL,
        twilio_account_sid=twilio_mock.ACCOUNT,
        twilio_auth_token=twilio_mock.TOKEN,
        twilio_from_number=twilio_mock.FROM,
        zendesk_subdomain=zendesk_mock.SUB,
        zendesk_email="hotline@acme.test",
        zendesk_api_token="zendesk-token",
        settings_path=test_settings(tmp_path),
        spool_dir=tmp_path / "spool",
        local_db=tmp_path / "local.sqlite3",
        maintenance_interval=0,
    )


@pytest.fixture
def app(config, conn):
    from web import create_app

    return create_app(config, maintenance=False)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def rt(config, conn, monkeypatch):
    """The worker's runtime for `config`, as `bot.runtime.get()` returns it to jobs."""
    built = runtime.build(config)
    monkeypatch.setattr(runtime, "get", lambda: built)
    return built


@pytest.fixture
def mocked():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def zendesk(mocked, conn):
    return zendesk_mock.ZendeskMock(conn).install(mocked)


@pytest.fixture
def twilio(mocked, conn):
    return twilio_mock.TwilioMock(conn).install(mocked)


SECRET = "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ=="  # Zendesk's documented test secret


@pytest.fixture
def open_rt(config, conn, tmp_path, monkeypatch):
    """The worker runtime with business hours always open (a deterministic ack template)."""
    built = runtime.build(always_open(config, tmp_path))
    monkeypatch.setattr(runtime, "get", lambda: built)
    return built


@pytest.fixture
def zd_client(config, conn):
    """The app with a Zendesk webhook secret configured."""
    from web import create_app

    return create_app(dataclasses.replace(config, zendesk_webhook_secret=SECRET),
                      maintenance=False).test_client()


def shipped_runtime(config: Config, tmp_path: Path, monkeypatch, **changes):
    """The worker runtime with the shipped settings (rules, model), `changes` set at their top."""
    data = yaml.safe_load(config.settings_path.read_text())
    data.update(changes)
    path = tmp_path / "shipped.yaml"
    path.write_text(yaml.safe_dump(data))
    built = runtime.build(dataclasses.replace(config, settings_path=path))
    monkeypatch.setattr(runtime, "get", lambda: built)
    return built


def always_open(config: Config, tmp_path: Path, open_: bool = True, coalesce_ms: int = 0) -> Config:
    """`config` with a settings file whose business hours are always (or never) open."""
    hours = "\n".join(f"  {d}: ['00:00', '23:59']" for d in
                      ("mon", "tue", "wed", "thu", "fri", "sat", "sun")) if open_ else "  {}"
    path = tmp_path / ("open.yaml" if open_ else "closed.yaml")
    path.write_text(f"timezone: UTC\nbusiness_hours:\n{hours}\n"
                    f"conversations:\n  coalesce_quiet_ms: {coalesce_ms}\n")
    return dataclasses.replace(config, settings_path=path)


# -- posting webhooks ----------------------------------------------------------

def load_form(name: str) -> str:
    """A fixture's form body, without its `# SOURCE:` line."""
    lines = (FIXTURES / name).read_text().splitlines()
    return "\n".join(line for line in lines if not line.startswith("# SOURCE:")).strip()


def sign(url: str, params, token: str = twilio_mock.TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, params)


def post_twilio(client, path: str, params: dict, *, query: str = "", signature: str | None = None):
    url = BASE_URL + path + (f"?{query}" if query else "")
    sig = sign(url, params) if signature is None else signature
    return client.post(path + (f"?{query}" if query else ""), data=params,
                       headers={"X-Twilio-Signature": sig})


def sms(sender: str, body: str, sid: str | None = None, **extra) -> dict:
    """An inbound-SMS form in the shape of tests/fixtures/twilio/inbound_sms.form.txt."""
    import uuid

    sid = sid or "SM" + uuid.uuid4().hex
    form = {"ToCountry": "US", "ToState": "CA", "SmsMessageSid": sid, "NumMedia": "0",
            "ToCity": "SAN BRUNO", "FromZip": "94030", "SmsSid": sid, "FromState": "CA",
            "SmsStatus": "received", "FromCity": "SAN BRUNO", "Body": body, "FromCountry": "US",
            "To": twilio_mock.FROM, "ToZip": "94030", "NumSegments": "1", "MessageSid": sid,
            "AccountSid": twilio_mock.ACCOUNT, "From": sender, "ApiVersion": "2010-04-01"}
    form.update(extra)
    return form


# -- running jobs --------------------------------------------------------------

class QuietWorker(SimpleWorker):
    """RQ's SimpleWorker without the command pub/sub thread, whose shutdown costs a second."""

    def subscribe(self):
        self.pubsub_thread = None


QUEUES = ("hotline-urgent", "hotline-replies", "hotline")   # as the Procfile's worker: urgent first


def run_jobs(conn, queue_name: str | None = None, *, future: bool = False, timeout: float = 30.0) -> int:
    """Run every queued job through a real RQ worker (urgent queue first) until nothing is left.

    Scheduled jobs (retries, back-off) are moved to their queue when due — or
    at once with `future=True`, standing in for the clock. Follow-ups (SPEC 7)
    keep their time even then: tests of them move the clock with time-machine.
    """
    queues = [Queue(name, connection=conn) for name in ([queue_name] if queue_name else QUEUES)]
    deadline = time.monotonic() + timeout
    done = 0
    while time.monotonic() < deadline:
        if any(len(q) for q in queues):
            worker = QuietWorker(queues, connection=conn)
            worker.work(burst=True)
            done += 1
            continue
        now = int(time.time())
        moved = 0
        for queue in queues:
            registry = ScheduledJobRegistry(queue=queue)
            due = registry.get_jobs_to_schedule(timestamp=now)
            if future:
                later = registry.get_jobs_to_schedule(timestamp=now + 10 ** 7)
                due = list(dict.fromkeys(due + [j for j in later if not j.startswith(FOLLOWUP_PREFIX)]))
            for job_id in due:
                registry.remove(job_id)
                queue.enqueue_job(Job.fetch(job_id, connection=conn))
                moved += 1
        if not moved:
            return done
    raise AssertionError("jobs still running at the deadline")


def run_due(conn, queue_names=QUEUES, timeout: float = 30.0) -> None:
    """Real RQ workers, each starting its scheduler (as `rq worker --with-scheduler` does),
    until nothing is queued or due on the (possibly time-travelled) clock."""
    queues = [Queue(name, connection=conn) for name in queue_names]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        QuietWorker(queues, connection=conn).work(burst=True, with_scheduler=True)
        now = int(time.time())
        if not any(len(q) for q in queues) and not any(
                ScheduledJobRegistry(queue=q).get_jobs_to_schedule(timestamp=now) for q in queues):
            return
    raise AssertionError("jobs still due at the deadline")


def worker_process(redis_url: str, config, ready=None, *, lock_ttl_ms: int | None = None,
                   idle: float | None = 3.0, scheduler: bool = True) -> None:
    """The Procfile's worker (`bot.worker.HotlineWorker`, with RQ's scheduler) in its own
    process — start it with multiprocessing's "fork" — Zendesk and Twilio over `responses`."""
    from bot import conversations
    from bot.worker import HotlineWorker

    if lock_ttl_ms:
        conversations.LOCK_TTL_MS = lock_ttl_ms
    conn = redis.Redis.from_url(redis_url)
    built = runtime.build(config)
    runtime.get = lambda: built
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        zendesk_mock.ZendeskMock(conn).install(rsps)
        twilio_mock.TwilioMock(conn).install(rsps)
        if ready is not None:
            ready.set()
        HotlineWorker([Queue(q, connection=conn) for q in QUEUES], connection=conn).work(
            burst=False, max_idle_time=idle, logging_level="WARNING", with_scheduler=scheduler)


def scheduled_in(conn, queue_name: str | None = None) -> list[float]:
    """Seconds from now at which each scheduled job (of every queue; retries, back-off,
    not follow-ups) is due."""
    now = datetime.now(timezone.utc)
    out = []
    for name in [queue_name] if queue_name else QUEUES:
        registry = ScheduledJobRegistry(queue=Queue(name, connection=conn))
        out += [(registry.get_scheduled_time(j) - now).total_seconds() for j in registry.get_job_ids()
                if not j.startswith(FOLLOWUP_PREFIX)]
    return out


# -- logs ----------------------------------------------------------------------

class LogCapture(logging.Handler):
    """Every record of Hotline's, RQ's and the root logger, formatted as the service formats it."""

    def __init__(self):
        from bot import logs

        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.formatter = logs.JsonFormatter()

    def emit(self, record):
        self.lines.append(self.format(record))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture
def captured():
    """The service's log lines during a test (Hotline's logger does not propagate to caplog)."""
    handler = LogCapture()
    loggers = [logging.getLogger(), logging.getLogger("hotline"), logging.getLogger("rq")]
    for logger in loggers:
        logger.addHandler(handler)
    previous = logging.getLogger("hotline").level
    logging.getLogger("hotline").setLevel(logging.DEBUG)
    yield handler
    logging.getLogger("hotline").setLevel(previous)
    for logger in loggers:
        logger.removeHandler(handler)


os.environ.setdefault("HOTLINE_TEST", "1")
