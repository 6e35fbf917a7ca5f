"""The same totals whichever process served (SPEC 11): a real gunicorn with two workers
takes the webhooks and answers the scrapes, a separate RQ worker process runs the jobs."""
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
import requests

from bot.config import ROOT
from tests import conftest
from tests.conftest import QUEUES, free_port, wait_for
from tests.test_metrics import samples
from web.simulate import post_signed, twilio_sms_params

TOKEN = "process-test-twilio-token"
BIN = Path(sys.executable).parent


@pytest.fixture
def service(redis_server, conn, tmp_path):
    """gunicorn --workers 2 in local mode on a free port; its access log names the worker's pid."""
    port = free_port()
    env = dict(os.environ, REDIS_URL=redis_server.url, HOTLINE_LOCAL_MODE="1",
               TWILIO_AUTH_TOKEN=TOKEN, PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
               HOTLINE_SETTINGS=str(conftest.test_settings(tmp_path)), HOTLINE_SPOOL_DIR=str(tmp_path / "spool"),
               HOTLINE_LOCAL_DB=str(tmp_path / "local.sqlite3"), HOTLINE_MAINTENANCE_INTERVAL="0")
    access = tmp_path / "access.log"
    proc = subprocess.Popen(
        [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", "2",
         "--access-logfile", str(access), "--access-logformat", "%(p)s %(U)s", "wsgi:app"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"

    def up():
        try:
            return requests.get(base + "/healthz", timeout=5).ok
        except requests.RequestException:
            return False
    try:
        wait_for(up, timeout=30, interval=0.1, what="gunicorn to answer")
        yield base, env, access
    finally:
        proc.terminate()
        proc.wait(10)


def pids(access: Path, path: str) -> set[str]:
    return {line.split()[0] for line in access.read_text().splitlines() if line.endswith(" " + path)}


def test_two_web_workers_and_a_worker_process_add_to_one_total(service, tmp_path):
    base, env, access = service
    sent = []

    def text(i):
        params = twilio_sms_params(f"+1555123{i:04d}", "+15005550006", "hello", "AC" + "0" * 32)
        resp = post_signed(base, "/twilio/sms", params, TOKEN)
        assert resp.status_code == 200, resp.text
        sent.append(i)

    def burst():  # several at once, so both workers take some
        start = len(sent)
        with ThreadPoolExecutor(6) as pool:
            for done in [pool.submit(text, start + i) for i in range(6)]:
                done.result()
        return len(pids(access, "/twilio/sms")) >= 2
    wait_for(burst, timeout=30, interval=0, what="both web workers to take texts")

    worker = subprocess.run(
        [str(BIN / "rq"), "worker", "--burst", "--worker-class", "rq.SimpleWorker",
         "--url", env["REDIS_URL"], *QUEUES],
        cwd=ROOT, env=env, capture_output=True, timeout=120)
    assert worker.returncode == 0, worker.stderr[-2000:]

    # The web workers send their counts within a second, whichever is asked.
    counted = redis.Redis.from_url(env["REDIS_URL"])
    wait_for(lambda: counted.hget("hotline:metrics:hotline_events_total", "sms\x1faccepted")
             == str(len(sent)).encode(), timeout=10, what="both workers' counts in Redis")
    scrapes = []

    def scrape():
        resp = requests.get(base + "/metrics", timeout=5)
        assert resp.status_code == 200
        scrapes.append(samples(resp.text))
        return len(pids(access, "/metrics")) >= 2 and len(scrapes) >= 4
    wait_for(scrape, timeout=30, interval=0, what="both web workers to answer a scrape")

    n = len(sent)
    shared = [{k: v for k, v in s.items() if not k[0].startswith("hotline_spool")} for s in scrapes]
    assert all(s == shared[0] for s in shared), "scrapes differ between web workers"
    seen = scrapes[0]
    assert seen[("hotline_events_total", (("outcome", "accepted"), ("source", "sms")))] == n
    assert seen[("hotline_inbound_to_desk_seconds_count", ())] == n
    # Each a new conversation: its job answers from the replies queue, then writes from `hotline`.
    assert seen[("hotline_job_seconds_count", (("job", "process_conversation"),))] == 2 * n
    assert seen[("hotline_job_seconds_count", (("job", "after_write"),))] == n  # reply + note
    assert seen[("hotline_queue_jobs", (("queue", "hotline"),))] == 0
