"""Embedded defaults (SPEC 2): without credentials, a local desk and outbox, viewable in
the browser, and `flask hotline simulate sms` signing a webhook to a running service."""
import dataclasses
import threading

import pytest
from werkzeug.serving import make_server

from bot import runtime
from bot.config import Config
from bot.desk.local import LocalDesk
from tests.conftest import free_port, run_jobs


@pytest.fixture
def local(config, conn, tmp_path, monkeypatch):
    """A local-mode service on a real port, and its worker runtime."""
    from web import create_app

    port = free_port()
    cfg = dataclasses.replace(
        config, local_mode=True, twilio_account_sid="", twilio_auth_token="local-token-for-tests",
        sendgrid_inbound_user="local", sendgrid_inbound_password="local-password-for-tests",
        twilio_from_number="", zendesk_subdomain="", zendesk_email="", zendesk_api_token="",
        public_base_url=f"http://127.0.0.1:{port}")
    app = create_app(cfg, maintenance=False)
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    built = runtime.build(cfg)
    monkeypatch.setattr(runtime, "get", lambda: built)
    yield app, built
    server.shutdown()


def test_simulated_text_becomes_a_local_ticket_and_a_local_reply(local, conn):
    app, built = local
    runner = app.test_cli_runner()

    result = runner.invoke(args=["hotline", "simulate", "sms", "--from", "+15551230001", "my dog is hurt"])

    assert result.exit_code == 0, result.output
    assert result.output.startswith("200 ") and "<Response" in result.output
    run_jobs(conn)
    [ticket] = LocalDesk(built.config.local_db).tickets()
    assert ticket["status"] == "new" and "hotline" in ticket["tags"].split()
    [comment, note] = LocalDesk(built.config.local_db).comment_rows(ticket["id"])
    assert note["public"] == 0 and note["body"].startswith("Hotline triage: EMERGENCY")
    assert comment["body"] == "my dog is hurt" and comment["public"] == 1

    web = app.test_client()
    desk_page = web.get("/local/desk").get_data(as_text=True)
    assert f'href="/local/desk/{ticket["id"]}"' in desk_page and "+1 555-123-0001" in desk_page
    ticket_page = web.get(f"/local/desk/{ticket['id']}").get_data(as_text=True)
    assert "my dog is hurt" in ticket_page
    outbox_page = web.get("/local/outbox").get_data(as_text=True)
    assert f"#{ticket['id']}" in outbox_page and "+15551230001" in outbox_page


def test_closing_a_local_ticket_makes_the_next_text_a_follow_up(local, conn):
    app, built = local
    runner = app.test_cli_runner()
    runner.invoke(args=["hotline", "simulate", "sms", "--from", "+15551230001", "first"])
    run_jobs(conn)
    [first] = LocalDesk(built.config.local_db).tickets()

    assert app.test_client().post(f"/local/desk/{first['id']}/status",
                                  data={"status": "closed"}).status_code == 302
    runner.invoke(args=["hotline", "simulate", "sms", "--from", "+15551230001", "second"])
    run_jobs(conn)

    newest = LocalDesk(built.config.local_db).tickets()[0]
    assert newest["id"] != first["id"] and newest["followup_of"] == first["id"]


def test_simulate_against_nothing_says_so(config, conn):
    from web import create_app

    cfg = dataclasses.replace(config, public_base_url=f"http://127.0.0.1:{free_port()}")
    result = create_app(cfg, maintenance=False).test_cli_runner().invoke(
        args=["hotline", "simulate", "sms", "--from", "+15551230001", "hi"])
    assert result.exit_code != 0 and f"nothing is listening at {cfg.public_base_url}/twilio/sms" \
        in result.output and "make run" in result.output and "Traceback" not in result.output


def test_local_pages_do_not_exist_outside_local_mode(client):
    assert client.get("/local/desk").status_code == 404


def test_local_mode_is_explicit_and_makes_its_own_secrets(tmp_path):
    """Without credentials and without HOTLINE_LOCAL_MODE, no webhook secret exists: fail closed.
    Local mode makes random secrets once per checkout; set ones win."""
    plain = Config.from_env({})
    assert plain.twilio_auth_token == "" and not plain.local_mode
    env = {"HOTLINE_LOCAL_MODE": "1", "HOTLINE_LOCAL_DB": str(tmp_path / "a" / "local.sqlite3")}
    first, again = Config.from_env(env), Config.from_env(env)
    secrets = (first.twilio_auth_token, first.zendesk_webhook_secret, first.sendgrid_inbound_password)
    assert all(len(s) >= 24 for s in secrets) and len(set(secrets)) == 3
    assert again.twilio_auth_token == first.twilio_auth_token and first.sendgrid_inbound_user == "local"
    assert (tmp_path / "a" / "local-secrets.json").stat().st_mode & 0o077 == 0
    other = Config.from_env({**env, "HOTLINE_LOCAL_DB": str(tmp_path / "b" / "local.sqlite3")})
    assert other.twilio_auth_token != first.twilio_auth_token
    assert Config.from_env({**env, "TWILIO_AUTH_TOKEN": "real"}).twilio_auth_token == "real"
    with pytest.raises(runtime.ConfigurationError):
        runtime.make_desk(plain)


def test_processes_starting_together_never_read_half_made_secrets(tmp_path, monkeypatch):
    """gunicorn's workers and the RQ worker start at once on a fresh checkout: while one is
    writing the secrets, another must not find a half-written file (it made gunicorn exit)."""
    from bot import config as config_module

    write, seen, calls = config_module.json.dump, [], []

    def write_while_another_starts(data, fh, **kw):
        calls.append(1)
        if len(calls) == 1:  # the other process looks right now, mid-write
            seen.append(config_module.local_secrets(tmp_path))
        write(data, fh, **kw)

    monkeypatch.setattr(config_module.json, "dump", write_while_another_starts)
    first = config_module.local_secrets(tmp_path)
    monkeypatch.undo()
    assert seen and first == seen[0] == config_module.local_secrets(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["local-secrets.json"]  # no temporary left


def test_check_reports_missing_credentials(config, conn):
    from web import create_app

    cfg = dataclasses.replace(config, zendesk_api_token="", twilio_auth_token="")
    result = create_app(cfg, maintenance=False).test_cli_runner().invoke(args=["hotline", "check"])
    assert result.exit_code == 1
    assert "problem  desk     no Zendesk credentials" in result.output
    assert "problem  phone    no Twilio credentials" in result.output


def test_health_endpoints(client):
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json["redis"] is True and ready.json["spooled"] == 0


def test_local_agent_reply_and_macro_reach_the_local_outbox(local, conn):
    from bot.phone.outbox import LocalOutbox

    app, built = local
    app.test_cli_runner().invoke(args=["hotline", "simulate", "sms", "--from", "+15551230001", "hurt"])
    run_jobs(conn)
    [ticket] = LocalDesk(built.config.local_db).tickets()
    web = app.test_client()

    assert web.post(f"/local/desk/{ticket['id']}/reply", data={"body": "Is he breathing?"}).status_code == 302
    assert web.post(f"/local/desk/{ticket['id']}/reply",
                    data={"body": "internal only", "private": "1"}).status_code == 302
    assert web.post(f"/local/desk/{ticket['id']}/tag", data={"tag": "hotline_send_help"}).status_code == 302
    run_jobs(conn)

    texts = [m["body"] for m in LocalOutbox(built.config.local_db).messages()]
    assert "Is he breathing?" in texts and "internal only" not in texts
    assert any("Reply STOP" in t for t in texts)
    assert "hotline_send_help" not in LocalDesk(built.config.local_db).tickets()[0]["tags"]


@pytest.mark.parametrize("auth", [None, ("local", "wrong"), ("someone", "local-password-for-tests")])
def test_local_mode_refuses_email_without_its_credentials(local, conn, auth):
    import base64

    from tests.test_sendgrid import email

    app, built = local
    headers = {"Authorization": "Basic " + base64.b64encode(":".join(auth).encode()).decode()} if auth else {}
    resp = app.test_client().post("/sendgrid/inbound", data=email(), headers=headers,
                                  content_type="multipart/form-data; boundary=xYzZY")
    assert resp.status_code == 401
    assert conn.keys("hotline:pending:*") == [] and LocalDesk(built.config.local_db).tickets() == []


def test_local_desk_forms_on_a_ticket_that_does_not_exist_are_404_and_change_nothing(local, conn):
    app, built = local
    web = app.test_client()
    assert web.post("/local/desk/999/reply", data={"body": "hello"}).status_code == 404
    assert web.post("/local/desk/999/tag", data={"tag": "hotline_send_help"}).status_code == 404
    assert web.post("/local/desk/999/status", data={"status": "solved"}).status_code == 404
    assert web.get("/local/desk/999").status_code == 404
    assert conn.keys("*") == [] and LocalDesk(built.config.local_db).comment_rows(999) == []


def test_local_desk_shows_times_in_the_teams_zone_and_names_it(local, conn):
    from zoneinfo import ZoneInfo

    app, built = local
    web_state = app.extensions["hotline"]
    web_state.settings = dataclasses.replace(web_state.settings, timezone=ZoneInfo("America/Los_Angeles"))
    app.test_cli_runner().invoke(args=["hotline", "simulate", "sms", "--from", "+15551230001", "hi"])
    run_jobs(conn)
    desk = LocalDesk(built.config.local_db)
    [ticket] = desk.tickets()
    with desk._db() as db:
        db.execute("UPDATE comments SET created_at = '2026-11-30T16:05:00+00:00'")
    page = app.test_client().get(f"/local/desk/{ticket['id']}").get_data(as_text=True)
    assert "Times in America/Los_Angeles" in page and "2026-11-30 08:05:00 PST" in page


def test_a_batched_comment_names_the_zone_of_its_time_stamps(rt):
    from zoneinfo import ZoneInfo

    from bot.conversations import compose
    from bot.events import InboundMessage

    rt.settings = dataclasses.replace(rt.settings, timezone=ZoneInfo("Europe/Madrid"))
    at = 1_764_518_700.0  # 2025-11-30 16:05 UTC
    messages = [InboundMessage(provider_id=f"SM{i}", sender="+15551230001", body=body, received_at=at)
                for i, body in enumerate(("one", "two"))]
    assert compose(rt, messages) == "[17:05:00 CET] one\n[17:05:00 CET] two"


def test_a_local_ticket_deleted_from_the_desk_makes_the_next_text_a_new_ticket(local, conn):
    app, built = local
    runner = app.test_cli_runner()
    runner.invoke(args=["hotline", "simulate", "sms", "--from", "+15551230001", "first"])
    run_jobs(conn)
    desk = LocalDesk(built.config.local_db)
    [first] = desk.tickets()
    with desk._db() as db:
        db.execute("DELETE FROM tickets WHERE id = ?", (first["id"],))
        db.execute("DELETE FROM comments WHERE ticket_id = ?", (first["id"],))

    runner.invoke(args=["hotline", "simulate", "sms", "--from", "+15551230001", "second"])
    run_jobs(conn)
    [second] = desk.tickets()
    assert second["id"] != first["id"]  # as in Zendesk, an id is never given twice
    assert [c["body"] for c in desk.comment_rows(second["id"]) if c["public"]] == ["second"]
    notes = [c["body"] for c in desk.comment_rows(second["id"]) if not c["public"]]
    assert any(n.startswith("Hotline triage") for n in notes), notes
