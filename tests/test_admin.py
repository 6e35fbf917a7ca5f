"""The operators' console (SPEC 6): sign-in, CSRF, basic auth, slowed failures, the
templates API (preview, save, versions, restore) and the pages around it."""
from __future__ import annotations

import base64
import dataclasses
import re

import pytest
from rq import Queue

from bot import keys, runtime
from bot.replies import REFRESH_SECONDS, Templates
from bot.template_store import TemplateStore
from tests.conftest import post_twilio, run_jobs, sms, wait_for

PASSWORD = "correct horse battery"
TEMPLATE = "/admin/api/templates/sms/ack/en"


@pytest.fixture
def config(config):
    """The shared test configuration with the console on."""
    return dataclasses.replace(config, secret_key="test-secret-" + "x" * 32,
                               admin_password=PASSWORD)


@pytest.fixture
def web(client):
    return client


def basic(name="admin", password=PASSWORD) -> dict:
    token = base64.b64encode(f"{name}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def csrf_from(page: str) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)


def sign_in(web, name="admin", password=PASSWORD):
    token = csrf_from(web.get("/admin/login").get_data(as_text=True))
    return web.post("/admin/login", data={"name": name, "password": password,
                                          "csrf_token": token, "next": "/admin/queues"})


def signed_in_token(web) -> str:
    assert sign_in(web).status_code == 302
    return csrf_from(web.get("/admin/templates").get_data(as_text=True))


# -- who may come in -----------------------------------------------------------

@pytest.mark.parametrize("method,path", [
    ("get", "/admin/api/templates"), ("get", TEMPLATE), ("put", TEMPLATE),
    ("get", TEMPLATE + "/versions"), ("post", TEMPLATE + "/restore"), ("post", "/admin/api/preview")])
def test_api_without_credentials_is_401_json(web, method, path):
    resp = getattr(web, method)(path, json={})
    assert resp.status_code == 401 and resp.json["error"] == "unauthorized"
    assert resp.headers["WWW-Authenticate"].startswith("Basic")


@pytest.mark.parametrize("path", ["/admin/", "/admin/templates", "/admin/templates/sms/ack/en",
                                  "/admin/queues", "/admin/triage", "/admin/rq/"])
def test_pages_without_a_session_redirect_to_sign_in(web, path):
    resp = web.get(path)
    assert resp.status_code == 302 and resp.headers["Location"].startswith("/admin/login?next=")


def test_sign_in_then_next_then_sign_out(web):
    resp = sign_in(web)
    assert resp.status_code == 302 and resp.headers["Location"] == "/admin/queues"
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie
    page = web.get("/admin/queues")
    assert page.status_code == 200 and "Failed jobs" in page.get_data(as_text=True)

    out = web.post("/admin/logout", data={"csrf_token": csrf_from(page.get_data(as_text=True))})
    assert out.status_code == 302
    assert web.get("/admin/queues").status_code == 302


def test_next_never_leaves_the_site(web):
    token = csrf_from(web.get("/admin/login").get_data(as_text=True))
    resp = web.post("/admin/login", data={"name": "admin", "password": PASSWORD,
                                          "csrf_token": token, "next": "//evil.example/x"})
    assert resp.status_code == 302 and resp.headers["Location"] == "/admin/"


def test_sign_in_without_csrf_token_is_refused(web):
    resp = web.post("/admin/login", data={"name": "admin", "password": PASSWORD})
    assert resp.status_code == 400 and "CSRF" in resp.get_data(as_text=True)
    assert web.get("/admin/templates").status_code == 302


def test_wrong_password_is_401_and_repeated_failures_are_slowed(web):
    for _ in range(5):
        assert sign_in(web, password="wrong").status_code == 401
    resp = sign_in(web)  # even the right password waits now
    assert resp.status_code == 429 and "Too many failed attempts" in resp.get_data(as_text=True)
    assert "Retry-After" in resp.headers


@pytest.mark.parametrize("hops, other_address_waits", [(0, True), (1, False)])
def test_failures_are_counted_per_client_address_behind_the_configured_proxies(
        config, conn, hops, other_address_waits):
    from web import create_app

    app = create_app(dataclasses.replace(config, proxy_hops=hops), maintenance=False).test_client()
    mallory, maria = ({"X-Forwarded-For": "203.0.113.7"}, {"X-Forwarded-For": "198.51.100.2"})
    for _ in range(10):
        assert app.get("/admin/api/templates", headers={**basic(password="nope"), **mallory}).status_code == 401
    assert app.get("/admin/api/templates", headers={**basic(), **mallory}).status_code == 429
    # Without trusted proxies the header is the client's to forge: ignored, one address for all.
    expected = 429 if other_address_waits else 200
    assert app.get("/admin/api/templates", headers={**basic(), **maria}).status_code == expected


def test_basic_auth_failures_are_slowed_too(web):
    for _ in range(10):
        assert web.get("/admin/api/templates", headers=basic(password="nope")).status_code == 401
    assert web.get("/admin/api/templates", headers=basic()).status_code == 429


def test_session_api_writes_need_the_csrf_token(web):
    token = signed_in_token(web)
    refused = web.put(TEMPLATE, json={"body": "Hi #{{ ticket_id }}"})
    assert refused.status_code == 400 and refused.json["error"] == "csrf"
    assert web.get(TEMPLATE).json["source"] == "file"
    ok = web.put(TEMPLATE, json={"body": "Hi #{{ ticket_id }}"}, headers={"X-CSRFToken": token})
    assert ok.status_code == 200 and ok.json == {"version": 2}


def test_basic_auth_scripts_need_no_csrf_but_must_send_json(web):
    assert web.get("/admin/api/templates", headers=basic()).status_code == 200
    form = web.put(TEMPLATE, data={"body": "x"}, headers=basic())
    assert form.status_code == 415
    assert web.put(TEMPLATE, json={"body": "Hello #{{ ticket_id }}"}, headers=basic()).json == {"version": 2}


def test_admin_password_only_while_no_account_exists(web, app, conn):
    assert web.get("/admin/api/templates", headers=basic()).status_code == 200
    result = app.test_cli_runner().invoke(args=["hotline", "users", "add", "maria"],
                                                input="a long passphrase\n")
    assert result.exit_code == 0, result.output
    assert conn.hget(keys.OPERATORS, "maria").decode().startswith("scrypt:")
    assert web.get("/admin/api/templates", headers=basic()).status_code == 401
    assert web.get("/admin/api/templates", headers=basic("maria", "a long passphrase")).status_code == 200


def test_users_list_and_remove_and_a_removed_account_is_signed_out(web, app, conn):
    cli = app.test_cli_runner()
    for name in ("maria", "joe"):
        assert cli.invoke(args=["hotline", "users", "add", name], input="a long passphrase\n").exit_code == 0
    assert cli.invoke(args=["hotline", "users", "list"]).output.split() == ["joe", "maria"]
    assert sign_in(web, "joe", "a long passphrase").status_code == 302
    assert web.get("/admin/templates").status_code == 200

    result = cli.invoke(args=["hotline", "users", "remove", "joe"])
    assert result.exit_code == 0 and result.output.strip() == "account joe removed"
    assert web.get("/admin/templates").status_code == 302  # signed out: back to the sign-in page
    assert cli.invoke(args=["hotline", "users", "list"]).output.split() == ["maria"]
    missing = cli.invoke(args=["hotline", "users", "remove", "joe"])
    assert missing.exit_code != 0 and "no account joe" in missing.output
    last = cli.invoke(args=["hotline", "users", "remove", "maria"])
    assert "admin signs in with ADMIN_PASSWORD again" in last.output


def test_users_add_refuses_a_short_password(app, conn):
    result = app.test_cli_runner().invoke(args=["hotline", "users", "add", "bob"], input="short\n")
    assert result.exit_code != 0 and "at least" in result.output
    assert not conn.hexists(keys.OPERATORS, "bob")


def test_without_secret_key_the_console_is_off_clearly(config, conn):
    from web import create_app

    app = create_app(dataclasses.replace(config, secret_key=""), maintenance=False)
    resp = app.test_client().get("/admin/templates", headers=basic())
    assert resp.status_code == 503 and "SECRET_KEY is not set" in resp.json["reason"]


# -- templates API ---------------------------------------------------------------

def test_listing_names_every_template_and_its_source(web):
    web.put("/admin/api/templates/sms/ack/es", json={"body": "Hola #{{ ticket_id }}"}, headers=basic())
    rows = {r["id"]: r for r in web.get("/admin/api/templates", headers=basic()).json}
    assert rows["sms/ack/en"]["source"] == "file" and rows["sms/ack/es"]["source"] == "override"
    assert rows["sms/ack/es"]["author"] == "admin" and rows["voice/greeting/en"]["channel"] == "voice"


def test_preview_counts_encoding_and_segments(web):
    gsm = web.post("/admin/api/preview", json={"id": "sms/ack/en", "body": "Case #{{ ticket_id }} €"},
                   headers=basic()).json
    assert gsm == {"id": "sms/ack/en", "text": "Case #1234 €", "encoding": "GSM-7", "segments": 1,
                   "characters": 12, "units": 13, "errors": [], "warnings": []}
    emoji = web.post("/admin/api/preview", json={"id": "sms/ack/en", "body": "🐶" * 40},
                     headers=basic()).json
    assert emoji["encoding"] == "UCS-2" and emoji["characters"] == 40 and emoji["segments"] == 2
    long = web.post("/admin/api/preview", json={"id": "sms/ack/en", "body": "a" * 307},
                    headers=basic()).json
    assert long["segments"] == 3 and "3 segments" in long["warnings"][0] and not long["errors"]


@pytest.mark.parametrize("body,error", [
    ("Case #{{ ticket_idd }}", "unknown variable 'ticket_idd'"),
    ("Case #{{ ticket_id ", "syntax error on line 1"),
    ("🐶" * 1601, "over the 1600"),
    ("  {# nothing #}\n", "the text is empty"),
])
def test_broken_bodies_are_errors_in_preview_and_422_on_save(web, conn, body, error):
    preview = web.post("/admin/api/preview", json={"id": "sms/ack/en", "body": body}, headers=basic())
    assert any(error in e for e in preview.json["errors"])
    saved = web.put(TEMPLATE, json={"body": body}, headers=basic())
    assert saved.status_code == 422 and any(error in e for e in saved.json["errors"])
    assert not conn.exists(keys.template_history("sms/ack/en"))
    assert web.get(TEMPLATE, headers=basic()).json["source"] == "file"


def test_every_problem_is_reported_not_only_the_first(web):
    body = "{{ one }} and {{ two }}"
    errors = web.post("/admin/api/preview", json={"id": "sms/ack/en", "body": body},
                      headers=basic()).json["errors"]
    assert errors == ["unknown variable 'one'", "unknown variable 'two'"]


def test_unknown_template_is_404_and_bad_json_400(web):
    assert web.get("/admin/api/templates/sms/nope/en", headers=basic()).status_code == 404
    assert web.get("/admin/api/templates/..%2F..%2Fbot/config.py%00/x", headers=basic()).status_code == 404
    assert web.put("/admin/api/templates/sms/nope/en", json={"body": "x"}, headers=basic()).status_code == 404
    assert web.put(TEMPLATE, json={"text": "x"}, headers=basic()).status_code == 400
    assert web.post(TEMPLATE + "/restore", json={"version": "2"}, headers=basic()).status_code == 400
    assert web.post(TEMPLATE + "/restore", json={"version": 9}, headers=basic()).status_code == 404


def test_versions_newest_first_and_restore_makes_a_new_version(web, config):
    file_text = (config.templates_dir / "sms" / "ack.en.txt").read_text()
    web.put(TEMPLATE, json={"body": "One #{{ ticket_id }}"}, headers=basic())
    web.put(TEMPLATE, json={"body": "Two #{{ ticket_id }}"}, headers=basic())
    versions = web.get(TEMPLATE + "/versions", headers=basic()).json
    assert [v["version"] for v in versions] == [3, 2, 1]
    assert versions[0]["author"] == "admin" and versions[0]["at"].endswith("Z")
    assert versions[-1]["body"] == file_text and versions[-1]["author"] == "file"

    assert web.post(TEMPLATE + "/restore", json={"version": 2}, headers=basic()).json["version"] == 4
    now = web.get(TEMPLATE, headers=basic()).json
    assert now == {"id": "sms/ack/en", "body": "One #{{ ticket_id }}", "source": "override", "version": 4}

    web.post(TEMPLATE + "/restore", json={"version": 1}, headers=basic())
    back = web.get(TEMPLATE, headers=basic()).json
    assert back["source"] == "file" and back["version"] == 5 and back["body"] == file_text


# -- overrides reach every process -------------------------------------------------

def test_a_saved_override_reaches_another_process_within_seconds(config, conn):
    worker_side = Templates(config.templates_dir, conn)
    assert worker_side.render("sms/ack", "en", ticket_id=7).startswith("Hi, this is")
    TemplateStore(conn, Templates(config.templates_dir)).save(
        "sms/ack/en", "Changed #{{ ticket_id }}", "admin")
    wait_for(lambda: worker_side.render("sms/ack", "en", ticket_id=7) == "Changed #7",
             timeout=REFRESH_SECONDS + 2, what="the override to reach the other process")
    # Spanish has no override: still its file
    assert worker_side.render("sms/ack", "es", ticket_id=7).startswith("Hola, somos")


def test_the_next_auto_reply_uses_the_saved_override(web, config, conn, tmp_path,
                                                     zendesk, twilio, monkeypatch):
    from tests.conftest import always_open

    cfg = always_open(config, tmp_path)
    built = runtime.build(cfg)
    monkeypatch.setattr(runtime, "get", lambda: built)
    web.put(TEMPLATE, json={"body": "Edited by ops, case #{{ ticket_id }}"}, headers=basic())
    wait_for(lambda: built.templates.render("sms/ack", ticket_id=1).startswith("Edited"),
             timeout=REFRESH_SECONDS + 2, what="the worker's templates to see the override")
    assert post_twilio(web, "/twilio/sms", sms("+15551230009", "my account question")).status_code == 200
    run_jobs(conn)
    [ticket] = zendesk.all("ticket")
    assert [m["body"] for m in twilio.sent()] == [f"Edited by ops, case #{ticket['id']}"]


# -- the other pages -----------------------------------------------------------------

def test_queues_page_shows_failed_jobs_and_replays_them(web, conn, config):
    token = signed_in_token(web)
    queue = Queue(config.queue_name, connection=conn)
    job = queue.enqueue("bot.nonexistent.job", description="after_write(c1, 42)")
    run_jobs(conn)
    page = web.get("/admin/queues").get_data(as_text=True)
    assert "after_write(c1, 42)" in page and "Replay" in page
    resp = web.post(f"/admin/queues/failed/{job.id}/requeue", data={"csrf_token": token})
    assert resp.status_code == 302
    assert job.id in queue.get_job_ids()
    assert web.post(f"/admin/queues/failed/{job.id}/requeue").status_code == 400  # no CSRF token


def test_queues_page_shows_every_queue_and_replays_an_urgent_failed_job(web, conn, config):
    from datetime import timedelta

    token = signed_in_token(web)
    urgent, _, ordinary = (Queue(name, connection=conn) for name in config.queues)
    assert urgent.name == config.urgent_queue_name
    job = urgent.enqueue("bot.nonexistent.job", description="followup(42, first_response)")
    other = ordinary.enqueue("bot.nonexistent.job", description="after_write(c2, 43)")
    run_jobs(conn)
    urgent.enqueue_in(timedelta(hours=1), "bot.jobs.followup", description="followup(44, repage)")
    page = web.get("/admin/queues").get_data(as_text=True)
    counts = page[page.index("By queue"):page.index("Failed jobs")]
    assert f"<code>{urgent.name}</code>" in counts and f"<code>{ordinary.name}</code>" in counts
    row = page[page.index("followup(42, first_response)"):]
    assert f"<code>{urgent.name}</code>" in row[:row.index("</tr>")]  # listed with its queue
    assert "after_write(c2, 43)" in page and "followup(44, repage)" in page

    resp = web.post(f"/admin/queues/failed/{job.id}/requeue", data={"csrf_token": token})
    assert resp.status_code == 302
    assert job.id in urgent.get_job_ids() and job.id not in ordinary.get_job_ids()
    again = web.post(f"/admin/queues/failed/{job.id}/requeue", data={"csrf_token": token},
                     follow_redirects=True)
    assert again.status_code == 200 and "no longer in the failed list" in again.get_data(as_text=True)

    run_jobs(conn)  # fails again
    resp = web.post("/admin/queues/failed/requeue", data={"csrf_token": token}, follow_redirects=True)
    assert "2 job(s) replayed" in resp.get_data(as_text=True)
    assert job.id in urgent.get_job_ids() and other.id in ordinary.get_job_ids()


def test_queues_page_shows_the_spool_and_scheduled_jobs(web, conn, config):
    from datetime import timedelta

    from bot import spool

    signed_in_token(web)
    spool.write(config.spool_dir, {"received_at": 1_700_000_000.0, "event_id": "e1"})
    Queue(config.queue_name, connection=conn).enqueue_in(
        timedelta(hours=2), "bot.jobs.after_write", description="followup(c9, 12)")
    page = web.get("/admin/queues").get_data(as_text=True)
    assert "followup(c9, 12)" in page
    assert "2023-11-14 22:13:20 UTC" in page  # the spooled event's arrival


def test_rq_dashboard_is_mounted_behind_the_sign_in(web):
    signed_in_token(web)
    assert web.get("/admin/rq/").status_code == 200
    assert web.get("/admin/rq/0/data/queues.json").status_code == 200
    # its writes carry no CSRF token: only same-origin requests pass
    assert web.post("/admin/rq/requeue/hotline").status_code == 403
    assert web.get("/admin/rq/requeue/hotline").status_code == 403
    assert web.post("/admin/rq/requeue/hotline",
                    headers={"Origin": "http://localhost"}).status_code == 200


def test_try_a_text_shows_the_decision_and_why(web):
    token = signed_in_token(web)
    page = web.post("/admin/triage", data={"text": "my dog was hit by a car", "csrf_token": token})
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and 'id="decision"' in text
    decision = text.split('id="decision"', 1)[1]
    assert '<span class="chip chip-emergency">emergency</span>' in decision
    assert 'matched &#34;hit by a car&#34;' in decision or 'matched &quot;hit by a car&quot;' in decision


def test_templates_check_lists_every_problem_with_sizes(app, tmp_path):
    (tmp_path / "sms").mkdir()
    (tmp_path / "sms" / "ok.en.txt").write_text("Case #{{ ticket_id }}")
    (tmp_path / "sms" / "long.en.txt").write_text("🐶" * 2100)
    (tmp_path / "sms" / "bad.en.txt").write_text("{{ a }} {{ b }}")
    (tmp_path / "sms" / "wordy.en.txt").write_text("x" * 400)
    app_cfg = dataclasses.replace(app.extensions["hotline"].config, templates_dir=tmp_path)
    app.extensions["hotline"].config = app_cfg
    out = app.test_cli_runner().invoke(args=["hotline", "templates", "check"])
    assert out.exit_code == 1
    assert "ok    templates/sms/ok.en.txt  GSM-7, 10 characters, 1 segment" in out.output
    assert "unknown variable 'a'" in out.output and "unknown variable 'b'" in out.output
    assert "2100 characters: over the 1600" in out.output
    assert "warn  templates/sms/wordy.en.txt  GSM-7, 400 characters, 3 segments" in out.output
    assert "4 templates: 2 with errors, 1 with warnings" in out.output


def test_local_mode_makes_its_own_secret_key_and_keeps_it(tmp_path):
    import json

    from bot.config import Config

    env = {"HOTLINE_LOCAL_MODE": "1", "HOTLINE_LOCAL_DB": str(tmp_path / "local.sqlite3")}
    (tmp_path / "local-secrets.json").write_text(json.dumps({"TWILIO_AUTH_TOKEN": "kept"}))
    first = Config.from_env(env)
    assert len(first.secret_key) >= 32 and first.twilio_auth_token == "kept"
    assert Config.from_env(env).secret_key == first.secret_key
    assert Config.from_env({**env, "SECRET_KEY": "mine"}).secret_key == "mine"
    assert Config.from_env({"HOTLINE_LOCAL_MODE": ""}).secret_key == ""


def test_page_forms_need_the_csrf_token_even_with_basic_credentials(web, conn, config):
    job = Queue(config.queue_name, connection=conn).enqueue("bot.nonexistent.job")
    run_jobs(conn)
    resp = web.post(f"/admin/queues/failed/{job.id}/requeue", headers=basic())
    assert resp.status_code == 400 and job.id not in Queue(config.queue_name, connection=conn).get_job_ids()


def test_redis_away_is_a_clear_503_not_a_500(config, conn):
    from web import create_app
    from tests.conftest import free_port

    away = dataclasses.replace(config, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    client = create_app(away, maintenance=False).test_client()
    api = client.get("/admin/api/templates", headers=basic())
    assert api.status_code == 503 and api.json["error"] == "unavailable"
    page = client.get("/admin/templates", headers=basic())
    assert page.status_code == 503 and "Redis does not answer" in page.get_data(as_text=True)


def test_without_secret_key_a_browser_is_told_too(config, conn):
    from web import create_app

    app = create_app(dataclasses.replace(config, secret_key=""), maintenance=False)
    resp = app.test_client().get("/admin/", headers={"Accept": "text/html"})
    assert resp.status_code == 503 and "SECRET_KEY is not set" in resp.get_data(as_text=True)
    assert resp.mimetype == "text/html"


def test_an_override_broken_behind_the_consoles_back_leaves_the_file_in_charge(config, conn):
    conn.hset(keys.TEMPLATE_OVERRIDES, "sms/ack/en", "{{ broken ")
    conn.incr(keys.TEMPLATE_GENERATION)
    text = Templates(config.templates_dir, conn).render("sms/ack", "en", ticket_id=7)
    assert text == (config.templates_dir / "sms" / "ack.en.txt").read_text().strip()
