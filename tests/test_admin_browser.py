"""The operators' console in a real browser (Debian's Chromium driven by Playwright):
sign in, edit a template with live preview and segment counter, save, see the next
reply use it, restore the old version, sign out."""
from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import pytest
import yaml
from werkzeug.serving import make_server

from bot import runtime
from bot.config import Config
from bot.phone.outbox import LocalOutbox
from tests import conftest
from tests.conftest import free_port, run_jobs
from web.simulate import post_signed, twilio_sms_params

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
PASSWORD = "browser-test-password"
TWILIO_TOKEN = "local-token-for-browser-tests"


def open_all_day(tmp) -> Path:
    """The shipped settings (triage rules and all), open around the clock: a known auto-reply."""
    path = conftest.test_settings(tmp)
    data = yaml.safe_load(path.read_text())
    data["timezone"] = "UTC"
    data["business_hours"] = {day: ["00:00", "23:59"] for day in data["business_hours"]}
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="session")
def console(redis_server, tmp_path_factory):
    """A local-mode Hotline with the console on, served from a real server thread."""
    from web import create_app

    tmp = tmp_path_factory.mktemp("console")
    port = free_port()
    cfg = Config(
        redis_url=redis_server.url, public_base_url=f"http://127.0.0.1:{port}", local_mode=True,
        twilio_auth_token=TWILIO_TOKEN, secret_key="browser-" + "k" * 40,
        admin_password=PASSWORD, settings_path=open_all_day(tmp), spool_dir=tmp / "spool",
        local_db=tmp / "local.sqlite3", maintenance_interval=0)
    server = make_server("127.0.0.1", port, create_app(cfg, maintenance=False), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield cfg
    server.shutdown()


@pytest.fixture(scope="session")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: the browser tests need Debian's chromium "
                    "(`make test` installs it as root; else: apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, console, conn):
    context = browser.new_context(base_url=console.public_base_url)
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def text_customer(cfg: Config, body: str) -> None:
    params = twilio_sms_params("+15551230077", "+15005550006", body, "AC" + "0" * 32)
    assert post_signed(cfg.public_base_url, "/twilio/sms", params, TWILIO_TOKEN).ok


def test_operator_edits_a_template_and_the_next_reply_uses_it(page, console, conn, monkeypatch):
    from playwright.sync_api import expect

    # Signing in from a deep link comes back to it
    page.goto("/admin/templates/sms/ack/en")
    expect(page).to_have_url(re.compile(r"/admin/login\?next=.*sms.*ack.*en$"))
    page.get_by_label("Account").fill("admin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Password").press("Enter")  # keyboard is enough
    expect(page.get_by_role("heading", name="sms/ack/en")).to_be_visible()
    expect(page.locator("#encoding")).to_have_text("GSM-7")
    expect(page.locator("#segments")).to_have_text("2")

    # Live preview, counter and encoding as the operator types
    body = page.get_by_label("Template")
    body.fill("Got it 🐾 case #{{ ticket_id }}")
    expect(page.locator("#preview")).to_have_text("Got it 🐾 case #1234")
    expect(page.locator("#encoding")).to_have_text("UCS-2")
    expect(page.locator("#characters")).to_have_text("19")
    expect(page.locator("#segments")).to_have_text("1")
    body.fill("Got it, case #{{ ticket_idd }}")
    expect(page.locator("#problems")).to_contain_text("unknown variable 'ticket_idd'")
    expect(page.get_by_role("button", name="Save")).to_be_disabled()
    body.fill("Got it, case #{{ ticket_id }}. We text back soon.")
    expect(page.locator("#preview")).to_have_text("Got it, case #1234. We text back soon.")
    expect(page.locator("#encoding")).to_have_text("GSM-7")
    expect(page.locator("#problems")).to_be_empty()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").filter(has_text="Saved")).to_contain_text("version 2")
    expect(page.locator("#source")).to_have_text("override")
    expect(page.locator("#versions tbody tr")).to_have_count(2)

    # The next reply uses it (a fresh worker runtime, a real RQ worker)
    built = runtime.build(console)
    monkeypatch.setattr(runtime, "get", lambda: built)
    text_customer(console, "question about my account")
    run_jobs(conn)
    [sent] = LocalOutbox(console.local_db).messages()[:1]
    assert sent["body"].startswith("Got it, case #") and sent["body"].endswith("We text back soon.")

    # Roll back to the file's text: a new version 3
    page.get_by_role("button", name="Restore version 1").click()
    expect(page.get_by_role("status").filter(has_text="Restored")).to_contain_text(
        "Restored version 1 as version 3")
    expect(page.locator("#source")).to_have_text("file")
    expect(page.get_by_label("Template")).to_have_value(
        (console.templates_dir / "sms" / "ack.en.txt").read_text())

    # The list shows who changed what; then sign out
    page.get_by_role("link", name="Templates").first.click()
    expect(page.locator("table.list")).to_contain_text("admin")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    page.goto("/admin/templates")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_pages_work_on_a_phone_sized_screen(browser, console, conn):
    from rq import Queue

    Queue(console.queue_name, connection=conn).enqueue(  # a failed job fills the queues page
        "bot.nonexistent.job", description="after_write(c1, 42)")
    run_jobs(conn)
    context = browser.new_context(base_url=console.public_base_url,
                                  viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto("/admin/login")
    page.get_by_label("Account").fill("admin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    for path in ("/admin/templates", "/admin/templates/sms/emergency/en", "/admin/queues",
                 "/admin/triage"):
        page.goto(path)
        assert page.url.endswith(path), f"{path} led to {page.url}"  # the page itself, signed in
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} scrolls sideways on a phone ({width}px)"
    page.goto("/admin/triage")
    page.get_by_label("Customer's text").fill("my dog was hit by a car")
    page.get_by_role("button", name="Decide").click()
    assert page.locator("#decision .chip").inner_text() == "emergency"
    context.close()
