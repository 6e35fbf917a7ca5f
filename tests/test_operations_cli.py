"""`flask hotline simulate call|email` against a running service, `check` proving the
credentials (Zendesk and Twilio over `responses`), and commands that say what they did."""
import dataclasses

import responses

from bot.desk.local import LocalDesk
from tests import twilio_mock, zendesk_mock
from tests.conftest import free_port, run_jobs
from tests.test_local_mode import local  # noqa: F401 -- the service on a real loopback port

CALLER = "+15551230007"


def test_simulated_call_leaves_a_voicemail_and_its_transcription(local, conn):
    app, built = local
    desk = LocalDesk(built.config.local_db)
    result = app.test_cli_runner().invoke(args=[
        "hotline", "simulate", "call", "--from", CALLER, "--press", "2",
        "my claim number is missing"])

    assert result.exit_code == 0, result.output
    paths = [line.split()[1].split("?")[0] for line in result.output.splitlines()]
    assert paths == ["/twilio/voice", "/twilio/voice/menu", "/twilio/voice/recorded",
                     "/twilio/voice/recording", "/twilio/voice/transcription", "/twilio/voice/status"]
    assert "Gather" in result.output.splitlines()[0] and "Record" in result.output.splitlines()[1]
    run_jobs(conn, future=True)

    [ticket] = desk.tickets()
    assert {"hotline", "voice", "voicemail", "transcription"} <= set(ticket["tags"].split())
    bodies = "\n".join(c["body"] for c in desk.comment_rows(ticket["id"]))
    assert "Voicemail (claims, 12 s). Recording: https://api.twilio.com/" in bodies
    assert "Voicemail transcription: my claim number is missing" in bodies


def test_simulated_email_becomes_a_ticket(local, conn):
    app, built = local
    desk = LocalDesk(built.config.local_db)
    result = app.test_cli_runner().invoke(args=[
        "hotline", "simulate", "email", "--from", "pat@example.com", "--subject", "Lost dog",
        "Our sitter lost Rex at the park."])

    assert result.exit_code == 0, result.output
    assert result.output.startswith("200 ") and '"queued"' in result.output
    run_jobs(conn)
    [ticket] = desk.tickets()
    assert ticket["subject"] == "Lost dog" and "email" in ticket["tags"].split()
    assert desk.comment_rows(ticket["id"])[0]["body"] == "Our sitter lost Rex at the park."


def test_simulated_email_takes_a_from_with_a_display_name_and_refuses_a_non_address(local, conn):
    app, built = local
    runner = app.test_cli_runner()
    result = runner.invoke(args=["hotline", "simulate", "email", "--from", "Dana Owner <Dana@Example.com>",
                                 "hello"])
    assert result.exit_code == 0, result.output
    run_jobs(conn)
    [ticket] = LocalDesk(built.config.local_db).tickets()
    assert ticket["requester"] == "Dana Owner"

    refused = runner.invoke(args=["hotline", "simulate", "email", "--from", "nobody", "hello"])
    assert refused.exit_code == 2 and "not an email address" in refused.output


def test_simulated_email_with_a_wrong_password_is_refused(local, conn):
    from web import create_app

    app, _ = local
    cli_app = create_app(dataclasses.replace(app.extensions["hotline"].config,
                                             sendgrid_inbound_password="wrong"), maintenance=False)
    result = cli_app.test_cli_runner().invoke(args=["hotline", "simulate", "email", "--from",
                                                "pat@example.com", "hello"])
    assert result.exit_code == 1 and result.output.startswith("401 ")


def test_simulate_call_with_nothing_listening_says_so(config, conn):
    from web import create_app

    cfg = dataclasses.replace(config, public_base_url=f"http://127.0.0.1:{free_port()}")
    result = create_app(cfg, maintenance=False).test_cli_runner().invoke(
        args=["hotline", "simulate", "call", "--from", CALLER])
    assert result.exit_code == 1 and "nothing is listening at" in result.output
    assert "make run" in result.output and "Traceback" not in result.output


# -- check -------------------------------------------------------------------

ME = f"{zendesk_mock.BASE}/users/me.json"
ACCOUNT = f"{twilio_mock.API}.json"
NUMBERS = f"{twilio_mock.API}/IncomingPhoneNumbers.json"


def zendesk_user(user_id, role):
    return {"user": {"id": user_id, "url": None if user_id is None else
                     f"{zendesk_mock.BASE}/users/{user_id}.json",
                     "name": "Anonymous user" if user_id is None else "Hotline API",
                     "email": "invalid@example.com" if user_id is None else "hotline@acme.test",
                     "role": role, "active": True, "verified": True}}


def twilio_account(status="active"):
    return {"sid": twilio_mock.ACCOUNT, "friendly_name": "Hotline", "status": status,
            "type": "Full", "owner_account_sid": twilio_mock.ACCOUNT,
            "date_created": "Tue, 01 Apr 2025 10:00:00 +0000",
            "date_updated": "Tue, 01 Apr 2025 10:00:00 +0000", "auth_token": "redacted",
            "uri": f"/2010-04-01/Accounts/{twilio_mock.ACCOUNT}.json", "subresource_uris": {}}


def numbers(*owned):
    return {"incoming_phone_numbers": [{"sid": "PN" + "2" * 32, "phone_number": n,
                                        "friendly_name": n, "account_sid": twilio_mock.ACCOUNT}
                                       for n in owned],
            "end": max(len(owned) - 1, 0), "first_page_uri": "/x", "next_page_uri": None,
            "page": 0, "page_size": 1, "previous_page_uri": None, "start": 0, "uri": "/x"}


TWILIO_401 = {"code": 20003, "message": "Authenticate",
              "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401}


def check(config, **changes):
    from web import create_app

    changes = {"secret_key": "check-secret-" + "x" * 32, **changes}
    app = create_app(dataclasses.replace(config, **changes), maintenance=False)
    return app.test_cli_runner().invoke(args=["hotline", "check"])


def test_check_proves_good_credentials(config, conn):
    with responses.RequestsMock() as rsps:
        rsps.get(ME, json=zendesk_user(1, "admin"))
        rsps.get(ACCOUNT, json=twilio_account())
        rsps.get(NUMBERS, json=numbers(twilio_mock.FROM))
        result = check(config)
        sent = [c.request for c in rsps.calls]

    assert result.exit_code == 0, result.output
    assert "ok       mode     production" in result.output
    assert f"ok       redis    {config.redis_url} (from " in result.output
    assert "ok       desk     Zendesk acme.zendesk.com as hotline@acme.test: user 1, admin" in result.output
    assert f"ok       phone    Twilio {twilio_mock.ACCOUNT}: account active" in result.output
    assert f"ok       sender   {twilio_mock.FROM} is one of the account's numbers" in result.output
    assert "ok       console  SECRET_KEY is set" in result.output and "check-secret" not in result.output
    assert result.output.rstrip().endswith("all good")
    assert "PhoneNumber=%2B15005550006" in sent[2].url and sent[0].headers["Authorization"]


def test_check_names_a_missing_secret_key(config, conn):
    with responses.RequestsMock() as rsps:
        rsps.get(ME, json=zendesk_user(1, "admin"))
        rsps.get(ACCOUNT, json=twilio_account())
        rsps.get(NUMBERS, json=numbers(twilio_mock.FROM))
        result = check(config, secret_key="")
    assert result.exit_code == 1
    assert "problem  console  SECRET_KEY is not set: the operators' console (/admin) answers 503" \
        in result.output
    assert result.output.rstrip().endswith("1 problem(s)")


def test_check_names_each_bad_credential(config, conn):
    with responses.RequestsMock() as rsps:
        rsps.get(ME, status=401, json={"error": "Couldn't authenticate you"})
        rsps.get(ACCOUNT, status=401, json=TWILIO_401)
        result = check(config)

    assert result.exit_code == 1
    assert "problem  desk     Zendesk acme.zendesk.com as hotline@acme.test: credentials refused" \
        in result.output
    assert f"problem  phone    Twilio {twilio_mock.ACCOUNT}: credentials refused" in result.output
    assert "2 problem(s)" in result.output


def test_check_refuses_an_anonymous_or_end_user_and_a_number_not_owned(config, conn):
    with responses.RequestsMock() as rsps:
        rsps.get(ME, json=zendesk_user(None, "end-user"))
        rsps.get(ACCOUNT, json=twilio_account())
        rsps.get(NUMBERS, json=numbers())
        result = check(config)
    assert result.exit_code == 1
    assert "Zendesk answered as the anonymous user" in result.output
    assert f"problem  sender   {twilio_mock.FROM} is not among the account's incoming phone numbers" \
        in result.output

    with responses.RequestsMock() as rsps:
        rsps.get(ME, json=zendesk_user(7, "end-user"))
        rsps.get(ACCOUNT, json=twilio_account("suspended"))
        result = check(config)
    assert "user 7 is an end-user; Hotline needs an agent or admin" in result.output
    assert "account is suspended" in result.output


def test_check_with_a_messaging_service(config, conn):
    service = "MG" + "3" * 32
    url = f"https://messaging.twilio.com/v1/Services/{service}"
    with responses.RequestsMock() as rsps:
        rsps.get(ME, json=zendesk_user(1, "agent"))
        rsps.get(ACCOUNT, json=twilio_account())
        rsps.get(url, status=404, json={"code": 20404, "message": "not found", "status": 404,
                                        "more_info": "https://www.twilio.com/docs/errors/20404"})
        result = check(config, twilio_from_number="", twilio_messaging_service_sid=service)
    assert result.exit_code == 1
    assert f"problem  sender   messaging service {service}: 404 code 20404 (no such messaging service)" \
        in result.output


def test_check_in_local_mode_masks_the_redis_password(config, conn):
    url = config.redis_url.replace("redis://", "redis://:hunter2@")
    result = check(config, local_mode=True, zendesk_api_token="", twilio_auth_token="", redis_url=url)
    assert "ok       mode     local" in result.output
    assert "desk     local (" in result.output and "phone    local outbox (" in result.output
    assert "redis://:****@127.0.0.1" in result.output and "hunter2" not in result.output


def test_check_uses_the_redis_of_make_run(redis_server, conn, tmp_path, monkeypatch):
    """`make run` writes var/run.env; `flask hotline check` in another terminal reads it."""
    from bot import config as config_module
    from web import create_app

    run_env = tmp_path / "run.env"
    run_env.write_text(f"REDIS_URL={redis_server.url}\nPUBLIC_BASE_URL=http://127.0.0.1:8123\n"
                       "HOTLINE_LOCAL_MODE=1\n")
    monkeypatch.setattr(config_module, "RUN_ENV", run_env)
    monkeypatch.setattr("web.checks.RUN_ENV", run_env)
    monkeypatch.setattr(config_module, "ROOT", tmp_path)  # no .env of the developer's
    for name in ("REDIS_URL", "PUBLIC_BASE_URL", "HOTLINE_LOCAL_MODE", "ZENDESK_API_TOKEN",
                 "TWILIO_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOTLINE_SETTINGS", str(config_module.Config().settings_path))
    monkeypatch.setenv("HOTLINE_LOCAL_DB", str(tmp_path / "local.sqlite3"))  # its local secrets too
    result = create_app(maintenance=False).test_cli_runner().invoke(args=["hotline", "check"])
    assert f"ok       redis    {redis_server.url} (from var/run.env: the Redis of the running " \
           f"`make run`) answers" in result.output, result.output
    assert result.exit_code == 0


def test_failed_list_says_when_there_is_nothing(app, conn):
    result = app.test_cli_runner().invoke(args=["hotline", "failed", "list"])
    assert result.exit_code == 0
    assert result.output.strip() == "nothing failed: no failed jobs in queues hotline-urgent, hotline-replies and hotline and no events set aside"


def test_simulated_call_signed_with_the_wrong_token_stops_at_the_refusal(local, conn):
    from web import create_app

    app, _ = local
    cli_app = create_app(dataclasses.replace(app.extensions["hotline"].config,
                                             twilio_auth_token="not-the-token"), maintenance=False)
    result = cli_app.test_cli_runner().invoke(args=["hotline", "simulate", "call", "--from", CALLER])
    assert result.exit_code == 1
    assert result.output.splitlines() == ["403 /twilio/voice"]
