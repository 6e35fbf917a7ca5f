"""`POST /sendgrid/inbound`: SendGrid Inbound Parse, parsed mode (SPEC 3, 9).

The multipart body is read raw and parsed with the standard library's email
parser, and every text field is decoded with the charset SendGrid names for
it in `charsets` — `request.form` would turn cp850 or Shift-JIS into U+FFFD.
Quoted history and signatures are removed with email-reply-parser; the full
original is kept as an attachment. Auto-replies and bounces open nothing.
"""
from __future__ import annotations

import codecs
import hashlib
import hmac
import json
import logging
import re
import uuid
from email import policy
from email.parser import BytesParser, HeaderParser
from email.utils import getaddresses, parseaddr
from html.parser import HTMLParser

from email_reply_parser import EmailReplyParser
from flask import Blueprint, Response, g, jsonify, request

from bot.events import InboundMessage, Media
from bot.redact import redact
from handlers.common import accept, bad_request, state

log = logging.getLogger("hotline.sendgrid")
bp = Blueprint("sendgrid", __name__)

BOUNCE_SENDERS = re.compile(r"^(mailer-daemon|postmaster)@", re.IGNORECASE)
AUTO_PRECEDENCE = {"bulk", "auto_reply", "junk"}


def _authorised() -> bool:
    cfg = state().config
    if not cfg.sendgrid_inbound_user or not cfg.sendgrid_inbound_password:
        return False  # fail closed, local mode included
    auth = request.authorization
    if auth is None or auth.type != "basic":
        return False
    user_ok = hmac.compare_digest((auth.username or "").encode(), cfg.sendgrid_inbound_user.encode())
    pass_ok = hmac.compare_digest((auth.password or "").encode(), cfg.sendgrid_inbound_password.encode())
    return user_ok and pass_ok


def parse_multipart(body: bytes, content_type: str) -> tuple[dict[str, bytes], list[dict]] | None:
    """Raw form-data → (fields as bytes, files); None when it is not multipart."""
    if not content_type.lower().startswith("multipart/form-data") or "boundary=" not in content_type:
        return None
    msg = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    if not msg.is_multipart():
        return None
    fields, files = {}, []
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename:
            files.append({"field": name, "filename": filename, "content": payload,
                          "content_type": part.get_content_type()})
        else:
            fields[name] = payload
    return fields, files


def _decode(raw: bytes, charset: str | None) -> str:
    try:
        codecs.lookup(charset or "utf-8")
    except LookupError:
        charset = "utf-8"
    return raw.decode(charset or "utf-8", errors="replace")


class _Text(HTMLParser):
    def __init__(self):
        super().__init__()
        self.out, self.hidden = [], 0

    def handle_data(self, data):
        if not self.hidden:
            self.out.append(data)

    def handle_starttag(self, tag, attrs):
        if tag in ("style", "script", "head"):
            self.hidden += 1
        if tag in ("br", "p", "div", "li", "tr"):
            self.out.append("\n")

    def handle_endtag(self, tag):
        if tag in ("style", "script", "head") and self.hidden:
            self.hidden -= 1


def html_to_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return re.sub(r"\n{3,}", "\n\n", "".join(parser.out)).strip()


def automatic(headers, sender: str) -> str | None:
    """Why this email was sent by a machine (auto-reply, bounce), or None."""
    auto = (headers.get("Auto-Submitted") or "").strip().lower()
    if auto and auto != "no":
        return f"Auto-Submitted: {auto}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress"):
        if headers.get(name) and name != "X-Auto-Response-Suppress":
            return name
    precedence = (headers.get("Precedence") or "").strip().lower()
    if precedence in AUTO_PRECEDENCE:
        return f"Precedence: {precedence}"
    if BOUNCE_SENDERS.match(sender):
        return "bounce"
    return None


@bp.post("/sendgrid/inbound")
def inbound():
    if not _authorised():
        log.warning("sendgrid.webhook.unauthorised")
        return Response("unauthorised\n", status=401, mimetype="text/plain",
                        headers={"WWW-Authenticate": 'Basic realm="hotline"'})
    st = state()
    request.max_content_length = st.settings.email_max_bytes
    g.body_limit_name = "the email limit, email.max_bytes in settings"
    parsed = parse_multipart(request.get_data(cache=False), request.content_type or "")
    if parsed is None:
        return bad_request("not multipart/form-data (use Inbound Parse's parsed mode)")
    fields, files = parsed
    try:
        charsets = json.loads(_decode(fields.get("charsets", b"{}"), "utf-8") or "{}")
    except ValueError:
        charsets = {}

    def text(name: str) -> str:
        return _decode(fields.get(name, b""), charsets.get(name)).strip()

    name, sender = parseaddr(text("from"))
    sender = sender.strip().lower()
    if "@" not in sender:
        return bad_request("missing from")
    headers = HeaderParser(policy=policy.default).parsestr(text("headers") + "\n\n")
    why = automatic(headers, sender)
    if why:
        log.info("sendgrid.ignored", extra={"reason": why})
        return jsonify(status="ignored", reason=why)

    full = text("text") or html_to_text(text("html"))
    new = EmailReplyParser.parse_reply(full).strip() or full
    message_id = (headers.get("Message-ID") or "").strip()
    thread = [t for t in re.split(r"\s+", " ".join(
        [headers.get("In-Reply-To") or "", headers.get("References") or ""])) if t.startswith("<")]
    provider_id = message_id or "sha256:" + hashlib.sha256(fields.get("headers", b"") +
                                                           fields.get("text", b"")).hexdigest()
    try:
        spam = float(text("spam_score") or 0)
    except ValueError:
        spam = 0.0
    tags = ["spam_suspected"] if text("spam_score") and spam >= st.settings.email_spam_threshold else []

    blobs, media = {}, []
    info = {}
    try:
        info = json.loads(text("attachment-info") or "{}")
    except ValueError:
        pass
    for f in files:
        key = uuid.uuid4().hex
        meta = info.get(f["field"], {}) if isinstance(info, dict) else {}
        blobs[key] = f["content"]
        media.append(Media(url=f"blob:{key}", content_type=meta.get("type") or f["content_type"],
                           filename=meta.get("filename") or f["filename"]))
    if new != full:
        key = uuid.uuid4().hex
        original = f"{text('headers')}\n\n{full}"
        blobs[key] = redact(original).encode("utf-8")
        media.append(Media(url=f"blob:{key}", content_type="text/plain", filename="original-email.txt"))

    recipients = [a for _, a in getaddresses([text("to")])]
    message = InboundMessage(
        provider_id=provider_id, sender=sender, sender_name=name.strip(), channel="email",
        source="sendgrid", kind_of="email", subject=redact(text("subject")), body=redact(new),
        recipient=recipients[0] if recipients else "", message_id=message_id, thread_ids=thread,
        media=media, tags=tags)
    outcome = accept(message, blobs)
    return jsonify(status=outcome.value)
