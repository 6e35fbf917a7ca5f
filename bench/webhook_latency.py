"""Answer latency of `POST /twilio/sms` under a sustained open-loop load.

What `run()` does, start to finish (everything it starts is stopped in a
`finally`, also on error or Ctrl-C):

1. starts a private `redis-server` (no persistence) and gunicorn as the
   Procfile's `web` line does (2 workers x 4 threads, no access log), each
   on a free loopback port, with a throwaway spool dir and local DB;
2. waits for `GET /readyz` to answer 200;
3. builds and signs every request beforehand (a fresh MessageSid each, From
   spread over 50 numbers), so the client spends its time sending, not signing;
4. sends them open-loop: request i is due at t0 + i/rate whatever happened to
   the ones before it, over keep-alive `http.client` connections, one per client
   thread. The first `warmup` seconds are sent but left out of the figures;
5. reports latency measured from the actual send (and, to show how far the
   client fell behind, from the scheduled time), errors (anything but 200), and
   checks in Redis and the spool that every 200 left a queued job.

No RQ worker runs: jobs just pile up in the private Redis. This measures the
webhook's answer, not the trip to Zendesk.

`python -m bench.webhook_latency` runs it alone and writes
bench/results/webhook_latency.json; `make bench` runs it via bench.run.
"""
from __future__ import annotations

import argparse
import gc
import http.client
import json
import math
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"

PATH = "/twilio/sms"
TARGET_RATE = 200          # requests per second
TARGET_P99_MS = 20.0
DEFAULT_WORKERS = 16       # client threads (= keep-alive connections)
DEFAULT_WARMUP = 2.0       # seconds sent first and not counted
REQUEST_TIMEOUT = 10.0     # per request, seconds
READY_DEADLINE = 30.0      # for redis-server and gunicorn to come up, seconds
GRACE = 15.0               # after the last due time, stop sending anything still queued

GUNICORN_WORKERS = 2
GUNICORN_THREADS = 4
QUEUE_NAME = "hotline"
ACCOUNT_SID = "AC" + "0" * 32
HOTLINE_NUMBER = "+15005550006"
SENDERS = [f"+1555{2000000 + i:07d}" for i in range(50)]
TEXTS = [
    "Hi, my order hasn't arrived yet",
    "my dog is hurt, what do I do?",
    "Can someone call me back please",
    "ok thanks",
    "¿Dónde está mi pedido? Lo necesito hoy 🙏",
    "The app keeps saying my card was declined but the bank says it went through. "
    "Order number 48213, placed Tuesday evening.",
    "STOP asking me to rate you lol, I just want to know when the tech comes",
    "?",
]


# --------------------------------------------------------------------------- services

def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Stop a process this module started, and anything left in its process group.

    Each child is started with start_new_session=True, so its process group id
    is its own pid and holds only it and what it forked (gunicorn's workers).
    """
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, 0)          # anything of ours still alive in that group?
    except (ProcessLookupError, PermissionError):
        pass
    else:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass


def _start(cmd: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    fh = open(log, "wb")
    try:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        fh.close()


def _wait_redis(proc: subprocess.Popen, port: int, log: Path) -> None:
    import redis

    conn = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1)
    deadline = time.monotonic() + READY_DEADLINE
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited ({proc.returncode}):\n{_tail(log)}")
        try:
            if conn.ping():
                conn.close()
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"redis-server did not answer PING within {READY_DEADLINE:.0f}s:\n"
                               f"{_tail(log)}")
        time.sleep(0.05)


def _wait_ready(proc: subprocess.Popen, port: int, log: Path) -> None:
    deadline = time.monotonic() + READY_DEADLINE
    last = "no answer"
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited ({proc.returncode}):\n{_tail(log)}")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", "/readyz")
            resp = conn.getresponse()
            body = resp.read()
            if resp.status == 200:
                return
            last = f"{resp.status} {body[:200]!r}"
        except OSError as exc:
            last = type(exc).__name__
        finally:
            conn.close()
        if time.monotonic() > deadline:
            raise RuntimeError(f"GET /readyz not 200 within {READY_DEADLINE:.0f}s "
                               f"(last: {last}):\n{_tail(log)}")
        time.sleep(0.1)


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        fields = _stat_fields(entry) if entry.isdigit() else None
        if fields and int(fields[1]) == pid:
            out.append(int(entry))
    return out


def _stat_fields(pid) -> list[bytes] | None:
    """/proc/<pid>/stat after the command name (state, ppid, …), or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    return stat[stat.rindex(b")") + 2:].split()


def _cpu_seconds(pids: list[int]) -> float:
    """user+system CPU time of `pids`, from /proc (0 for any that is gone)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields:
            total += int(fields[11]) + int(fields[12])   # utime, stime
    return total / tick


def _machine_cpu() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine so far, from /proc/stat."""
    tick = os.sysconf("SC_CLK_TCK")
    try:
        with open("/proc/stat") as fh:
            f = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return math.nan, math.nan
    # user nice system idle iowait irq softirq steal [guest guest_nice: already in user]
    busy = f[0] + f[1] + f[2] + f[5] + f[6]
    return busy / tick, (f[7] if len(f) > 7 else 0) / tick


def _redis_calls(conn) -> dict:
    """Calls per command so far, from INFO commandstats."""
    return {k.removeprefix("cmdstat_"): v["calls"] for k, v in conn.info("commandstats").items()}


def _version(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "redis_server": _version(["redis-server", "--version"]),
        "gunicorn": _version([sys.executable, "-m", "gunicorn", "--version"]),
    }


# --------------------------------------------------------------------------- requests

def build_requests(n: int, base_url: str, token: str, seed: int = 1,
                   keepalive: bool = True) -> list[tuple[bytes, dict]]:
    """`n` signed Twilio SMS webhooks: (urlencoded body, headers)."""
    from twilio.request_validator import RequestValidator

    from web.simulate import twilio_sms_params

    validator = RequestValidator(token)
    url = base_url + PATH
    rng = random.Random(seed)
    out = []
    for i in range(n):
        params = twilio_sms_params(SENDERS[i % len(SENDERS)], HOTLINE_NUMBER, rng.choice(TEXTS),
                                   ACCOUNT_SID)
        out.append((urlencode(params).encode(), {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": validator.compute_signature(url, params),
            "User-Agent": "TwilioProxy/1.1",
            **({} if keepalive else {"Connection": "close"}),
        }))
    rng.shuffle(out)   # senders in no fixed rotation
    return out


# --------------------------------------------------------------------------- load

class OpenLoop:
    """Send request i at t0 + i/rate from a pool of threads, each on its own keep-alive connection.

    A thread takes the next index only when it is free, so if every thread is
    waiting on the server the next requests go out late; how late is recorded
    (`sent - due`) rather than hidden.
    """

    def __init__(self, port: int, requests: list[tuple[bytes, dict]], rate: float, workers: int):
        self.port, self.requests, self.rate, self.workers = port, requests, rate, workers
        n = len(requests)
        self.due = [0.0] * n
        self.sent = [math.nan] * n
        self.done = [math.nan] * n
        self.status: list[int | str | None] = [None] * n
        self.reconnects = 0
        self._next = 0
        self._lock = threading.Lock()
        self.t0 = 0.0
        self.stop_at = 0.0

    def _take(self) -> int:
        with self._lock:
            i = self._next
            self._next += 1
            return i

    def _one(self, conn: http.client.HTTPConnection, i: int) -> None:
        body, headers = self.requests[i]
        self.sent[i] = time.perf_counter()
        for attempt in (0, 1):
            reused = conn.sock is not None
            try:
                conn.request("POST", PATH, body, headers)
                resp = conn.getresponse()
                resp.read()
                if resp.will_close:
                    conn.close()
                self.status[i] = resp.status
                break
            except (ConnectionResetError, BrokenPipeError) as exc:
                conn.close()
                # The server may close an idle keep-alive connection just as we
                # reuse it: retry once on a fresh one, latency still counted from
                # the first send.
                if reused and attempt == 0:
                    with self._lock:
                        self.reconnects += 1
                    continue
                self.status[i] = type(exc).__name__
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                self.status[i] = type(exc).__name__
                break
        self.done[i] = time.perf_counter()

    def _worker(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT)
        try:
            while True:
                i = self._take()
                if i >= len(self.requests):
                    return
                due = self.t0 + i / self.rate
                self.due[i] = due
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                if time.perf_counter() > self.stop_at:
                    self.status[i] = "not_sent"
                    continue
                self._one(conn, i)
        finally:
            conn.close()

    def run(self) -> None:
        threads = [threading.Thread(target=self._worker, name=f"bench-client-{k}", daemon=True)
                   for k in range(self.workers)]
        self.t0 = time.perf_counter() + 0.2
        self.stop_at = self.t0 + len(self.requests) / self.rate + GRACE
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(0.0, self.stop_at + REQUEST_TIMEOUT * 2 + 5 - time.perf_counter()))
        if any(t.is_alive() for t in threads):
            raise RuntimeError("client threads did not finish in time")


# --------------------------------------------------------------------------- figures

def pct(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return math.nan
    k = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(k, len(sorted_values)) - 1]


def _dist(values: list[float]) -> dict:
    v = sorted(values)
    if not v:
        return {}
    return {"min": v[0], "p50": pct(v, 50), "p90": pct(v, 90), "p99": pct(v, 99),
            "p99_9": pct(v, 99.9), "max": v[-1], "mean": sum(v) / len(v)}


def _r(d: dict, nd: int = 3) -> dict:
    return {k: (round(v, nd) if isinstance(v, float) else v) for k, v in d.items()}


def summarise(load: OpenLoop, first: int) -> dict:
    """Figures for requests `first`.. (the ones after the warm-up)."""
    idx = range(first, len(load.requests))
    sent = [i for i in idx if not math.isnan(load.sent[i])]
    ms = 1000.0
    latency = [(load.done[i] - load.sent[i]) * ms for i in sent]
    from_due = [(load.done[i] - load.due[i]) * ms for i in sent]
    late = [max(0.0, load.sent[i] - load.due[i]) * ms for i in sent]
    errors: dict[str, int] = {}
    for i in idx:
        if load.status[i] != 200:
            key = str(load.status[i])
            errors[key] = errors.get(key, 0) + 1
    ok = sum(1 for i in idx if load.status[i] == 200)

    span_sent = (load.sent[sent[-1]] - load.sent[sent[0]]) if len(sent) > 1 else math.nan
    last_done = max((load.done[i] for i in sent), default=math.nan)
    first_due = load.due[first] if len(load.requests) > first else math.nan

    per_second = []
    buckets: dict[int, list[float]] = {}
    for i in sent:
        buckets.setdefault(int(load.due[i] - first_due), []).append(
            (load.done[i] - load.sent[i]) * ms)
    for sec in sorted(buckets):
        v = sorted(buckets[sec])
        per_second.append({"second": sec, "count": len(v), "p50_ms": round(pct(v, 50), 3),
                           "p99_ms": round(pct(v, 99), 3), "max_ms": round(v[-1], 3)})

    return {
        "count": len(idx),
        "sent": len(sent),
        "ok": ok,
        "errors": len(idx) - ok,
        "error_kinds": errors,
        "latency_ms": _r(_dist(latency)),
        "latency_from_due_ms": _r(_dist(from_due)),
        "behind_schedule_ms": _r({**_dist(late),
                                  "over_1ms": sum(1 for x in late if x > 1),
                                  "over_10ms": sum(1 for x in late if x > 10)}),
        "offered_rate": load.rate,
        "achieved_send_rate": round((len(sent) - 1) / span_sent, 2) if len(sent) > 1 else None,
        "completed_rate": round(ok / (last_done - first_due), 2) if ok else None,
        "duration_s": round(last_done - first_due, 3) if sent else None,
        "per_second": per_second,
    }


def _log_counts(log: Path) -> dict:
    text = log.read_text(errors="replace") if log.exists() else ""
    return {
        "warning_lines": text.count('"level": "WARNING"'),
        "error_lines": text.count('"level": "ERROR"') + text.count("[ERROR]"),
        "worker_timeouts": text.count("WORKER TIMEOUT"),
        "tracebacks": text.count("Traceback"),
        "invalid_signature": text.count("twilio.webhook.invalid-signature"),
        "spooled": text.count("intake.spooled"),
    }


# --------------------------------------------------------------------------- run

def run(rate: float = TARGET_RATE, seconds: float = 20, workers: int = DEFAULT_WORKERS,
        warmup: float = DEFAULT_WARMUP, keepalive: bool = True) -> dict:
    """Measure `POST /twilio/sms` at `rate` req/s for `seconds` (after `warmup` s); return figures.

    keepalive=False sends `Connection: close`, so every request opens a new
    connection (as behind a proxy that does not keep upstream connections).
    """
    if shutil.which("redis-server") is None:
        raise RuntimeError("redis-server is needed (Debian: apt-get install redis-server)")
    token = "bench-twilio-token"
    n_warm = int(round(rate * warmup))
    n_measured = int(round(rate * seconds))

    with ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="hotline-bench-"))
        stack.callback(shutil.rmtree, tmp, True)

        redis_port = _free_port()
        redis_log = tmp / "redis.log"
        redis_proc = _start(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--daemonize", "no",
                             "--dir", str(tmp)], redis_log)
        stack.callback(_stop, redis_proc)
        _wait_redis(redis_proc, redis_port, redis_log)

        port = _free_port()
        base_url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items()
               if k not in ("GUNICORN_CMD_ARGS", "WEB_CONCURRENCY")}
        env.update({
            "HOTLINE_LOCAL_MODE": "1",
            # explicit, so a developer's .env cannot change what is signed or where it goes
            "TWILIO_AUTH_TOKEN": token,
            "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "PUBLIC_BASE_URL": base_url,
            "PORT": str(port),
            "HOTLINE_QUEUE": QUEUE_NAME,
            "HOTLINE_SPOOL_DIR": str(tmp / "spool"),
            "HOTLINE_LOCAL_DB": str(tmp / "local.sqlite3"),
            "PYTHONUNBUFFERED": "1",
        })
        server_cmd = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
                      "--workers", str(GUNICORN_WORKERS), "--threads", str(GUNICORN_THREADS),
                      "--graceful-timeout", "5", "wsgi:app"]
        web_log = tmp / "gunicorn.log"
        web_proc = _start(server_cmd, web_log, env)
        stack.callback(_stop, web_proc)
        _wait_ready(web_proc, port, web_log)

        requests = build_requests(n_warm + n_measured, base_url, token, keepalive=keepalive)
        load = OpenLoop(port, requests, rate, workers)

        import redis
        from rq import Queue

        conn = redis.Redis(host="127.0.0.1", port=redis_port)
        calls_before = _redis_calls(conn)
        web_workers = sorted(_children(web_proc.pid))
        server_pids = web_workers + [web_proc.pid, redis_proc.pid]
        cpu_before = _cpu_seconds(server_pids)
        worker_cpu_before = [_cpu_seconds([pid]) for pid in web_workers]
        redis_cpu_before = _cpu_seconds([redis_proc.pid])
        client_before = sum(os.times()[:2])
        machine_before = _machine_cpu()
        gc.collect()
        gc.freeze()
        gc.disable()
        try:
            load.run()
        finally:
            gc.enable()
            gc.unfreeze()
        cpu_server = _cpu_seconds(server_pids) - cpu_before
        # keep-alive connections stay with the gunicorn worker that accepted them,
        # so the split between workers shows how evenly the load fell
        worker_cpu = [round(_cpu_seconds([pid]) - before, 2)
                      for pid, before in zip(web_workers, worker_cpu_before)]
        redis_cpu = _cpu_seconds([redis_proc.pid]) - redis_cpu_before
        cpu_client = sum(os.times()[:2]) - client_before
        machine_after = _machine_cpu()
        machine_busy = machine_after[0] - machine_before[0]
        steal = machine_after[1] - machine_before[1]

        result = summarise(load, n_warm)

        redis_calls = {k: v - calls_before.get(k, 0) for k, v in _redis_calls(conn).items()
                       if k != "info" and v - calls_before.get(k, 0) > 0}
        all_ok = sum(1 for s in load.status if s == 200)
        spool_dir = tmp / "spool"
        spooled = len(list(spool_dir.glob("*.json"))) if spool_dir.is_dir() else 0
        # One job per conversation (SPEC 12): every accepted text waits in its
        # conversation's pending set, so that is what must match the 200 answers.
        queued = sum(Queue(name, connection=conn).count
                     for name in (QUEUE_NAME, QUEUE_NAME + "-urgent", QUEUE_NAME + "-replies"))
        pending = sum(conn.zcard(k) for k in conn.scan_iter(match="hotline:pending:*"))
        conn.close()
        total_s = len(requests) / rate
        result.update({
            "warmup_requests": n_warm,
            "reconnects": load.reconnects,
            "server_check": {
                "answered_200_incl_warmup": all_ok,
                "jobs_queued": queued,
                "events_pending": pending,
                "events_spooled": spooled,
                "consistent": pending + spooled == all_ok,
                # commands Redis executed per request (INFO commandstats: MULTI/EXEC and the
                # Lua script's own calls included, plus the maintenance thread's few)
                "redis_commands_per_request": round(sum(redis_calls.values()) / len(requests), 2),
                "redis_commands": redis_calls,
                "log": _log_counts(web_log),
            },
            "cpu": {
                "server_s": round(cpu_server, 2),
                "client_s": round(cpu_client, 2),
                "server_ms_per_request": round(cpu_server * 1000 / len(requests), 3),
                "gunicorn_workers_s": worker_cpu,
                "redis_s": round(redis_cpu, 2),
                "server_cores_busy": round(cpu_server / total_s, 2),
                "client_cores_busy": round(cpu_client / total_s, 2),
                # anything else running on the machine meanwhile (other people's tests,
                # the hypervisor taking the CPU away) shows up here
                "other_processes_cores_busy": round(
                    max(0.0, machine_busy - cpu_server - cpu_client) / total_s, 2),
                "steal_s": round(steal, 2),
            },
        })
        result["setup"] = {
            "rate": rate, "seconds": seconds, "warmup_seconds": warmup, "client_threads": workers,
            "keepalive": keepalive,
            "server": "gunicorn --bind 127.0.0.1:PORT --workers 2 --threads 4 "
                      "--graceful-timeout 5 wsgi:app",
            "redis": "redis-server --save '' --appendonly no (private, loopback)",
            "request": f"POST {PATH}, signed, fresh MessageSid, From over {len(SENDERS)} numbers",
        }
        result["target"] = {"p99_ms": TARGET_P99_MS, "rate": TARGET_RATE,
                            "met": bool(result["latency_ms"])
                            and result["latency_ms"]["p99"] <= TARGET_P99_MS
                            and result["errors"] == 0 and rate >= TARGET_RATE}
        result["machine"] = machine()
        result["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        return result


def format_report(r: dict) -> str:
    lat, due, late = r["latency_ms"], r["latency_from_due_ms"], r["behind_schedule_ms"]
    cpu, chk, m = r["cpu"], r["server_check"], r["machine"]

    def row(name, d):
        return (f"  {name:<22}{d.get('p50', math.nan):>9.2f}{d.get('p90', math.nan):>9.2f}"
                f"{d.get('p99', math.nan):>9.2f}{d.get('p99_9', math.nan):>9.2f}"
                f"{d.get('max', math.nan):>9.2f}")

    met = "met" if r["target"]["met"] else "NOT met"
    lines = [
        f"webhook latency: POST {PATH}, open loop {r['offered_rate']:g} req/s for "
        f"{r['setup']['seconds']:g} s (+{r['setup']['warmup_seconds']:g} s warm-up), "
        f"{'keep-alive' if r['setup']['keepalive'] else 'new connection each'}, "
        f"{m['nproc']} cores, Python {m['python']}",
        f"  {'ms':<22}{'p50':>9}{'p90':>9}{'p99':>9}{'p99.9':>9}{'max':>9}",
        row("latency (from send)", lat),
        row("latency (from due)", due),
        row("client behind sched.", late),
        f"  requests {r['count']}  ok {r['ok']}  errors {r['errors']}"
        + (f" {r['error_kinds']}" if r["error_kinds"] else "")
        + f"  reconnects {r['reconnects']}",
        f"  rate: offered {r['offered_rate']:g}/s  sent {r['achieved_send_rate']}/s  "
        f"completed {r['completed_rate']}/s",
        f"  cpu: server {cpu['server_ms_per_request']:.2f} ms/request "
        f"({cpu['server_cores_busy']:.2f} cores; s per gunicorn worker "
        f"{'/'.join(f'{x:g}' for x in cpu['gunicorn_workers_s'])}, redis {cpu['redis_s']:g})  "
        f"client {cpu['client_cores_busy']:.2f} cores",
        f"  cpu elsewhere on the machine meanwhile: "
        f"{cpu['other_processes_cores_busy']:.2f} cores, "
        f"steal {cpu['steal_s']:g} s",
        f"  redis: {chk['events_pending']} texts pending in {chk['jobs_queued']} queued jobs, "
        f"{chk['events_spooled']} spooled, for {chk['answered_200_incl_warmup']} answers 200"
        + ("" if chk["consistent"] else "  <-- MISMATCH")
        + f"; {chk['redis_commands_per_request']:g} commands/request",
        f"  target p99 <= {r['target']['p99_ms']:g} ms at {r['target']['rate']} req/s, "
        f"no errors: {met}",
    ]
    return "\n".join(lines)


def write_json(data: dict, name: str) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / name
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)
    return path


def _sigterm_to_exit(*_):
    raise SystemExit(143)   # so the finally blocks stop redis-server and gunicorn


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=TARGET_RATE, help="requests per second")
    p.add_argument("--seconds", type=float, default=20, help="measured duration")
    p.add_argument("--warmup", type=float, default=DEFAULT_WARMUP, help="unmeasured seconds first")
    p.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="client threads")
    p.add_argument("--no-keepalive", dest="keepalive", action="store_false",
                   help="a new connection per request (Connection: close)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    signal.signal(signal.SIGTERM, _sigterm_to_exit)
    args = parse_args(argv)
    result = run(rate=args.rate, seconds=args.seconds, workers=args.workers, warmup=args.warmup,
                 keepalive=args.keepalive)
    print(format_report(result))
    print(f"  written: {write_json(result, 'webhook_latency.json').relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
