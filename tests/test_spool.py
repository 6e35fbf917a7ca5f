"""Durable acceptance (SPEC 3.4): Redis down, full or silent — Twilio still gets 2xx, the
event is on disk, and it reaches Zendesk by itself once Redis is back."""
import dataclasses
import json
import socket
import threading

import redis

from bot import intake, keys, spool
from bot.events import InboundMessage
from tests.conftest import RedisServer, free_port, post_twilio, run_jobs, sms, wait_for


def app_for(config, url, **changes):
    from web import create_app

    cfg = dataclasses.replace(config, redis_url=url, **changes)
    return cfg, create_app(cfg, maintenance=False)


def spooled(cfg) -> list[dict]:
    return [json.loads(p.read_text()) for p in spool.pending(cfg.spool_dir)]


def test_redis_down_spools_then_forwards_by_itself(config, tmp_path, rt, zendesk, twilio):
    port = free_port()
    cfg, app = app_for(config, f"redis://127.0.0.1:{port}/0", maintenance_interval=0.05)
    client = app.test_client()

    resp = post_twilio(client, "/twilio/sms", sms("+15551230001", "my dog is hurt", sid="SM" + "d" * 32))
    assert resp.status_code == 200 and b"<Response" in resp.data
    [event] = spooled(cfg)
    assert event["data"]["provider_id"] == "SM" + "d" * 32 and event["data"]["body"] == "my dog is hurt"
    assert client.get("/readyz").status_code == 503

    server = RedisServer(tmp_path, "--loglevel", "warning")
    server.port, server.url = port, f"redis://127.0.0.1:{port}/0"
    from web import start_maintenance

    stop = start_maintenance(app)
    try:
        server.start()
        wait_for(lambda: not spool.pending(cfg.spool_dir), timeout=10, what="the spool to drain")
        assert client.get("/readyz").status_code == 200
        back = redis.Redis.from_url(server.url)
        assert back.llen("rq:queue:hotline-urgent") == 1  # an emergency stays urgent through the spool
        # The worker (pointed at the recovered Redis) takes it to Zendesk.
        rt.redis = back
        run_jobs(back)
        [ticket] = zendesk.all("ticket")
        assert zendesk.texts(ticket["id"]) == ["my dog is hurt"]
    finally:
        stop.set()
        server.stop()


def test_redis_full_spools_and_forwards_when_memory_frees(config, tmp_path):
    server = RedisServer(tmp_path, "--maxmemory", "2mb", "--maxmemory-policy", "noeviction").start()
    try:
        full = redis.Redis.from_url(server.url)
        blob = b"x" * 100_000
        try:
            for i in range(200):
                full.set(f"filler:{i}", blob)
            raise AssertionError("Redis never filled up")
        except redis.exceptions.OutOfMemoryError:
            pass
        cfg, app = app_for(config, server.url)

        resp = post_twilio(app.test_client(), "/twilio/sms", sms("+15551230001", "help"))

        assert resp.status_code == 200
        assert len(spooled(cfg)) == 1
        full.delete(*full.keys("filler:*"))
        assert intake.drain_spool(full, cfg.queue_name, cfg.spool_dir) == 1
        assert full.zcard(keys.PENDING_INDEX) == 1 and full.llen("rq:queue:hotline") == 1
    finally:
        server.stop()


def test_redis_that_never_answers_is_given_up_on_and_spooled(config):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections, never answers a command
    accepted = []
    threading.Thread(target=lambda: accepted.append(silent.accept()), daemon=True).start()
    try:
        cfg, app = app_for(config, f"redis://127.0.0.1:{silent.getsockname()[1]}/0")
        state = app.extensions["hotline"]
        kwargs = state.redis.connection_pool.connection_kwargs
        assert kwargs["socket_timeout"] <= 0.5 and kwargs["socket_connect_timeout"] <= 0.5

        resp = post_twilio(app.test_client(), "/twilio/sms", sms("+15551230001", "anyone?"))

        assert resp.status_code == 200
        assert len(spooled(cfg)) == 1
    finally:
        silent.close()


def test_same_text_spooled_twice_is_forwarded_once(config, conn):
    cfg, app = app_for(config, f"redis://127.0.0.1:{free_port()}/0")
    client = app.test_client()
    params = sms("+15551230001", "twice", sid="SM" + "e" * 32)
    post_twilio(client, "/twilio/sms", params)
    post_twilio(client, "/twilio/sms", params)
    assert len(spooled(cfg)) == 2

    assert intake.drain_spool(conn, cfg.queue_name, cfg.spool_dir) == 2

    assert spool.pending(cfg.spool_dir) == []
    [conv] = conn.zrange(keys.PENDING_INDEX, 0, -1)
    assert conn.zcard(keys.pending(conv.decode())) == 1


def test_forwarding_again_after_the_event_was_written_changes_nothing(config, conn, rt, zendesk, twilio):
    """Redis took the event but its answer was lost, so it was spooled too."""
    message = InboundMessage(provider_id="SM" + "f" * 32, sender="+15551230001", body="once")
    assert intake.accept(conn, "hotline", config.spool_dir, message) == intake.Outcome.QUEUED
    run_jobs(conn)
    spool.write(config.spool_dir, intake.envelope(message))

    assert intake.drain_spool(conn, "hotline", config.spool_dir) == 1
    run_jobs(conn)

    [ticket] = zendesk.all("ticket")
    assert len(zendesk.texts(ticket["id"])) == 1
    assert conn.zcard(keys.PENDING_INDEX) == 0


def test_spool_files_are_complete_json_with_no_temporary_leftovers(tmp_path):
    message = InboundMessage(provider_id="SM1", sender="+15551230001", body="é 🐶")
    path = spool.write(tmp_path, intake.envelope(message))
    assert json.loads(path.read_text(encoding="utf-8"))["data"]["body"] == "é 🐶"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_stale_conversation_of_a_dead_worker_is_offered_again(conn):
    message = InboundMessage(provider_id="SM2", sender="+15551230001", body="stuck",
                             received_at=1_000_000.0)
    intake._queue(conn, "hotline", intake.envelope(message))
    conn.delete("rq:queue:hotline-replies")  # the job (a new conversation's) died with its worker

    assert intake.sweep_stale(conn, "hotline", older_than=60) == 1
    assert conn.llen("rq:queue:hotline") == 1  # offered again for the write
    assert intake.sweep_stale(conn, "hotline", older_than=60) == 0  # not again at once
