"""SendGrid Inbound Parse (issue 6): raw multipart read with each field's charset, threading,
quoted-reply removal, machine mail filtered, end to end through a real worker."""
import base64
import dataclasses
import json

import pytest
import yaml

from bot import runtime
from tests.conftest import FIXTURES, run_jobs, stored
from tests.twilio_mock import JPEG

USER, PASSWORD = "parse", "s3cret-parse"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}


def multipart(fields: dict, files: list[tuple] = (), boundary: str = "xYzZY") -> bytes:
    """A parsed-mode Inbound Parse body: text fields as given bytes, files as (field, name, type, bytes)."""
    out = b""
    for name, value in fields.items():
        value = value if isinstance(value, bytes) else value.encode()
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n").encode() + value + b"\r\n"
    for field, filename, ctype, content in files:
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
                f"Content-Type: {ctype}\r\n\r\n").encode() + content + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def email(frm="Dana Owner <Dana@Example.com>", subject="Help", text="hello", headers=None,
          charset="UTF-8", files=(), **extra) -> bytes:
    head = headers or f"Message-ID: <m{abs(hash((subject, text))) % 10**9}@mail.example.com>\nFrom: {frm}\nSubject: {subject}"
    fields = {"headers": head, "from": frm, "to": "help@inbound.example.com", "subject": subject,
              "text": text.encode(charset) if isinstance(text, str) else text,
              "charsets": json.dumps({"to": "UTF-8", "from": "UTF-8", "subject": "UTF-8",
                                      "text": charset, "headers": "UTF-8"}),
              "envelope": '{"to":["help@inbound.example.com"],"from":"dana@example.com"}',
              "attachments": str(len(files))}
    if files:
        fields["attachment-info"] = json.dumps({f[0]: {"filename": f[1], "type": f[2]} for f in files})
    fields.update(extra)
    return multipart(fields, files)


def mail_app(config, tmp_path, monkeypatch, **email_settings):
    """App and worker with Inbound Parse credentials and these `email:` settings."""
    from web import create_app

    data = yaml.safe_load(config.settings_path.read_text())
    data["email"] = email_settings
    path = tmp_path / "mail.yaml"
    path.write_text(yaml.safe_dump(data))
    cfg = dataclasses.replace(config, settings_path=path, sendgrid_inbound_user=USER,
                              sendgrid_inbound_password=PASSWORD)
    built = runtime.build(cfg)
    monkeypatch.setattr(runtime, "get", lambda: built)
    return create_app(cfg, maintenance=False).test_client()


@pytest.fixture
def mail(config, conn, tmp_path, monkeypatch):
    return mail_app(config, tmp_path, monkeypatch, max_bytes=200_000, spam_threshold=5)


def post(client, body: bytes, headers=AUTH, boundary="xYzZY"):
    return client.post("/sendgrid/inbound", data=body, headers=headers,
                       content_type=f"multipart/form-data; boundary={boundary}")


def pending(conn) -> list[dict]:
    return [json.loads(m) for k in conn.keys("hotline:pending:*") for m in conn.zrange(k, 0, -1)]


def test_real_inbound_parse_payload_is_queued(mail, conn):
    raw = (FIXTURES / "sendgrid" / "default_data.multipart.txt").read_text()
    body = "\n".join(raw.splitlines()[1:]).replace("\n", "\r\n").encode()
    resp = post(mail, body)
    assert resp.status_code == 200 and resp.json["status"] == "queued"
    [event] = pending(conn)
    assert (event["sender"], event["sender_name"]) == ("test@example.com", "Example User")
    assert event["subject"] == "Testing non-raw" and event["body"] == "Hello Twilio SendGrid!"
    assert event["channel"] == "email"


@pytest.mark.parametrize("charset, words", [
    ("cp850", "Señor, mi perro está herido. ¿Qué hago?"),
    ("windows-1252", "The sitter’s invoice — €120 — is attached"),
    ("iso-8859-1", "Ça va? Mon chien a mangé du chocolat."),
    ("shift_jis", "犬が怪我をしました。助けてください。"),
])
def test_each_field_is_decoded_with_the_charset_sendgrid_names(mail, conn, charset, words):
    resp = post(mail, email(text=words, charset=charset))
    assert resp.status_code == 200
    assert pending(conn)[0]["body"] == words


def test_quoted_history_and_signature_are_removed_and_the_original_kept(mail, conn, zendesk, twilio):
    text = ("Here is the vet invoice for the claim.\n\n-- \nDana\n\n"
            "On Tue, Nov 24, 2026 at 9:00 AM Support <help@example.com> wrote:\n> Please send the invoice.\n")
    post(mail, email(subject="Claim documents", text=text,
                     files=[("attachment1", "invoice.jpg", "image/jpeg", JPEG)]))
    run_jobs(conn)

    [ticket] = zendesk.all("ticket")
    [comment] = zendesk.public(ticket["id"])
    assert comment["body"] == "Here is the vet invoice for the claim."
    uploads = {u["filename"]: u for u in zendesk.uploads().values()}
    assert uploads["invoice.jpg"]["size"] == len(JPEG) and uploads["invoice.jpg"]["content_type"] == "image/jpeg"
    assert "original-email.txt" in uploads
    assert len(comment["attachments"]) == 2
    assert ticket["subject"] == "Claim documents" and {"hotline", "email", "hotline_claim"} <= set(ticket["tags"])
    [user] = [u for u in zendesk.all("user")]
    assert user["email"] == "dana@example.com" and user["name"] == "Dana Owner"
    assert twilio.sent() == []  # no SMS to an email requester, no email ack unless asked


def test_threading_by_subject_reference_and_by_headers(mail, conn, zendesk, twilio):
    post(mail, email(subject="My dog was bitten", text="first email",
                     headers="Message-ID: <first@mail.example.com>\nSubject: My dog was bitten"))
    run_jobs(conn)
    [ticket] = zendesk.all("ticket")

    post(mail, email(subject="Re: My dog was bitten", text="a reply by headers",
                     headers="Message-ID: <second@mail.example.com>\nIn-Reply-To: <first@mail.example.com>\n"
                             "References: <first@mail.example.com>"))
    post(mail, email(subject=f"Update [#{ticket['id']}]", text="a reply by subject",
                     headers="Message-ID: <third@mail.example.com>"))
    post(mail, email(subject="Another matter entirely", text="new topic",
                     headers="Message-ID: <fourth@mail.example.com>"))
    run_jobs(conn)

    tickets = zendesk.all("ticket")
    assert len(tickets) == 2
    assert zendesk.texts(ticket["id"]) == ["first email", "a reply by headers", "a reply by subject"]
    assert zendesk.texts(tickets[1]["id"]) == ["new topic"]


def test_subject_reference_to_someone_elses_ticket_is_ignored(mail, conn, zendesk, twilio):
    other = zendesk.add_user("+15550001111")
    theirs = zendesk.add_ticket(other["id"])
    post(mail, email(subject=f"About [#{theirs['id']}]", text="is this mine?"))
    run_jobs(conn)
    assert zendesk.texts(theirs["id"]) == [] and len(zendesk.all("ticket")) == 2


@pytest.mark.parametrize("headers, frm", [
    ("Message-ID: <a@x>\nAuto-Submitted: auto-replied", "Dana <dana@example.com>"),
    ("Message-ID: <b@x>\nX-Autoreply: yes", "Dana <dana@example.com>"),
    ("Message-ID: <c@x>\nPrecedence: bulk", "Dana <dana@example.com>"),
    ("Message-ID: <d@x>\nPrecedence: auto_reply", "Dana <dana@example.com>"),
    ("Message-ID: <e@x>", "Mail Delivery Subsystem <MAILER-DAEMON@mx.example.com>"),
])
def test_auto_replies_and_bounces_open_nothing(mail, conn, headers, frm):
    resp = post(mail, email(frm=frm, headers=headers, text="I am out of office"))
    assert resp.status_code == 200 and resp.json["status"] == "ignored"
    assert pending(conn) == [] and conn.llen("rq:queue:hotline") == 0


def test_high_spam_score_is_tagged(mail, conn, zendesk, twilio):
    post(mail, email(text="cheap pills", spam_score="7.9"))
    run_jobs(conn)
    assert "spam_suspected" in zendesk.all("ticket")[0]["tags"]


def test_sendgrid_retry_of_the_same_email_changes_nothing(mail, conn, zendesk, twilio):
    body = email(headers="Message-ID: <same@mail.example.com>", text="once")
    assert post(mail, body).json["status"] == "queued"
    assert post(mail, body).json["status"] == "duplicate"
    run_jobs(conn)
    assert len(zendesk.all("ticket")) == 1 and len(zendesk.public(zendesk.all("ticket")[0]["id"])) == 1


def test_emergency_email_is_triaged_and_card_numbers_masked(mail, conn, zendesk, twilio):
    post(mail, email(subject="URGENT", text="my dog got hit by a car, charge my card 4111 1111 1111 1111"))
    run_jobs(conn)
    [ticket] = zendesk.all("ticket")
    assert ticket["priority"] == "urgent"
    assert zendesk.texts(ticket["id"]) == ["my dog got hit by a car, charge my card [card ending 1111]"]
    assert any(m["to"] == "+15005550009" for m in twilio.sent())  # on-call alerted


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Basic " + base64.b64encode(b"parse:wrong").decode()}])
def test_without_the_credentials_401_and_nothing(mail, conn, headers):
    resp = post(mail, email(), headers=headers)
    assert resp.status_code == 401 and not stored(conn)


def test_no_credentials_configured_refuses_everything(config, conn):
    from web import create_app

    client = create_app(config, maintenance=False).test_client()
    assert post(client, email()).status_code == 401


def test_not_multipart_or_no_from_is_400(mail, conn):
    r1 = mail.post("/sendgrid/inbound", data=b'{"from": "x"}', headers=AUTH, content_type="application/json")
    body = multipart({"subject": "no sender", "text": "hi"})
    r2 = post(mail, body)
    assert r1.status_code == 400 and "multipart" in r1.json["reason"]
    assert r2.status_code == 400 and r2.json["reason"] == "missing from"


def test_body_over_the_configured_limit_is_413(mail, conn):
    resp = post(mail, email(files=[("attachment1", "big.bin", "application/octet-stream", b"x" * 300_000)]))
    assert resp.status_code == 413 and not stored(conn)
    assert resp.json["reason"] == "body over 200000 bytes (the email limit, email.max_bytes in settings)"


def test_acknowledgement_by_email_only_when_settings_ask(config, conn, tmp_path, monkeypatch, zendesk, twilio):
    post(mail_app(config, tmp_path, monkeypatch, acknowledge=True), email(text="question about my booking"))
    run_jobs(conn)
    [ticket] = zendesk.all("ticket")
    ack = [c for c in zendesk.public(ticket["id"]) if c["author_id"] == zendesk.API_USER]
    assert len(ack) == 1 and f"case #{ticket['id']}" in ack[0]["body"]


def test_agent_replies_on_an_email_ticket_are_not_texted(mail, conn, zendesk, twilio):
    from tests.conftest import SECRET
    from tests.test_zendesk_events import comment_added, post_event

    post(mail, email(text="question by email"))
    run_jobs(conn)
    [ticket] = zendesk.all("ticket")
    zendesk.agent_comment(ticket["id"], zendesk.add_agent()["id"], "Answer by email")
    from web import create_app

    cfg = dataclasses.replace(runtime.get().config, zendesk_webhook_secret=SECRET)
    post_event(create_app(cfg, maintenance=False).test_client(), comment_added(ticket["id"], "ev-mail"))
    run_jobs(conn)
    assert twilio.sent() == []


def test_a_strangers_reply_headers_do_not_thread_onto_someone_elses_ticket(mail, conn, zendesk, twilio):
    post(mail, email(text="my case", headers="Message-ID: <victim@mail.example.com>"))
    run_jobs(conn)
    post(mail, email(frm="Mallory <mallory@example.net>", text="let me in",
                     headers="Message-ID: <x@evil.example>\nIn-Reply-To: <victim@mail.example.com>"))
    run_jobs(conn)
    first, second = zendesk.all("ticket")
    assert zendesk.texts(first["id"]) == ["my case"] and zendesk.texts(second["id"]) == ["let me in"]


def test_card_numbers_in_subject_and_original_are_masked(mail, conn, zendesk, twilio):
    text = "Refund please\n\nOn Mon, Support wrote:\n> card 4111 1111 1111 1111?\n"
    post(mail, email(subject="card 5500 0000 0000 0004", text=text))
    stored = b"".join(v for k in conn.keys("hotline:blob:*") for v in [conn.get(k)])
    assert b"4111 1111" not in stored and b"[card ending 1111]" in stored
    run_jobs(conn)
    [ticket] = zendesk.all("ticket")
    assert ticket["subject"] == "card [card ending 0004]"


def test_html_only_email_keeps_text_not_styles(mail, conn):
    body = multipart({"from": "dana@example.com", "subject": "hi", "headers": "Message-ID: <h@x>",
                      "html": "<html><head><style>p{color:red}</style></head><body><p>My cat is lost</p></body></html>"})
    post(mail, body)
    assert pending(conn)[0]["body"] == "My cat is lost"


def test_retried_email_does_not_store_its_attachments_again(mail, conn):
    body = email(headers="Message-ID: <att@mail.example.com>", files=[("attachment1", "a.jpg", "image/jpeg", JPEG)])
    post(mail, body)
    post(mail, body)
    assert len(conn.keys("hotline:blob:*")) == 1
