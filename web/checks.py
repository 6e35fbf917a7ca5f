"""What `flask hotline check` proves: the configuration, and each credential by one cheap
read call through the same clients the worker uses (zenpy, twilio-python).

Each check returns `Line`s: what was checked and whether it holds.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from dotenv import dotenv_values
from twilio.base.exceptions import TwilioRestException

from bot import redisconn
from bot.config import ROOT, RUN_ENV, Config
from bot.errors import PermanentError, TransientError
from bot.redisconn import UNAVAILABLE


@dataclass
class Line:
    ok: bool
    text: str

    def __str__(self) -> str:
        return ("ok       " if self.ok else "problem  ") + self.text


def mask_url(url: str) -> str:
    """`redis://user:secret@host/0` → `redis://user:****@host/0`."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:****@{host}"))


def _declared(path, name: str) -> str | None:
    return dotenv_values(path).get(name) if path.exists() else None


def redis_source(url: str) -> str:
    """Where the Redis URL in force came from, in words."""
    if url == _declared(RUN_ENV, "REDIS_URL"):
        return "var/run.env: the Redis of the running `make run`"
    if url == _declared(ROOT / ".env", "REDIS_URL"):
        return ".env"
    if os.environ.get("REDIS_URL") == url:
        return "REDIS_URL"
    return "the default: REDIS_URL is not set and `make run` is not running"


def mode(cfg: Config) -> Line:
    if cfg.local_mode:
        return Line(True, "mode     local (HOTLINE_LOCAL_MODE=1): SQLite desk and outbox at "
                          f"{cfg.public_base_url}/local/")
    return Line(True, "mode     production")


def console_line(cfg: Config) -> Line:
    """The operators' console needs SECRET_KEY (local mode makes one); without it /admin answers 503."""
    if cfg.secret_key:
        return Line(True, "console  SECRET_KEY is set: the operators' console is at /admin")
    return Line(False, "console  SECRET_KEY is not set: the operators' console (/admin) answers 503 "
                       "until it is set to a long random value")


def redis_line(cfg: Config) -> Line:
    where = f"{mask_url(cfg.redis_url)} (from {redis_source(cfg.redis_url)})"
    try:
        redisconn.connect(cfg.redis_url, timeout=2).ping()
    except UNAVAILABLE as exc:
        return Line(False, f"redis    {where} does not answer ({type(exc).__name__})")
    return Line(True, f"redis    {where} answers")


def _without_credentials(cfg: Config, local: str, missing: str) -> list[Line]:
    """No credentials: fine in local mode (the local adapter says where it keeps things)."""
    return [Line(True, f"{local} ({cfg.local_db})")] if cfg.local_mode else [Line(False, missing)]


def desk_lines(cfg: Config, desk) -> list[Line]:
    """Which desk, and for Zendesk: the API user is a real agent or admin."""
    if not cfg.has_zendesk:
        return _without_credentials(cfg, "desk     local", "desk     no Zendesk credentials "
                                    "(ZENDESK_SUBDOMAIN, ZENDESK_EMAIL, ZENDESK_API_TOKEN)")
    name = f"Zendesk {cfg.zendesk_subdomain}.zendesk.com as {cfg.zendesk_email}"
    try:
        user = desk.api_user()
    except (PermanentError, TransientError) as exc:
        why = "credentials refused" if getattr(exc, "status", None) in (401, 403) else str(exc)
        return [Line(False, f"desk     {name}: {why}")]
    if user.get("id") is None:
        return [Line(False, f"desk     {name}: Zendesk answered as the anonymous user; "
                            "check ZENDESK_EMAIL and ZENDESK_API_TOKEN")]
    if user.get("role") not in ("agent", "admin"):
        return [Line(False, f"desk     {name}: user {user['id']} is an {user.get('role')}; "
                            "Hotline needs an agent or admin")]
    return [Line(True, f"desk     {name}: user {user['id']}, {user['role']}")]


def phone_lines(cfg: Config, client) -> list[Line]:
    """Which phone, and for Twilio: the account answers and the sender belongs to it."""
    if not cfg.has_twilio:
        return _without_credentials(cfg, "phone    local outbox", "phone    no Twilio credentials "
                                    "(TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM_NUMBER or "
                                    "TWILIO_MESSAGING_SERVICE_SID)")
    name = f"Twilio {cfg.twilio_account_sid}"
    try:
        account = client.api.v2010.accounts(cfg.twilio_account_sid).fetch()
    except TwilioRestException as exc:
        why = "credentials refused" if exc.status in (401, 403) else f"{exc.status} code {exc.code}"
        return [Line(False, f"phone    {name}: {why}")]
    except OSError as exc:
        return [Line(False, f"phone    {name}: unreachable ({type(exc).__name__})")]
    if account.status != "active":
        return [Line(False, f"phone    {name}: account is {account.status}")]
    out = [Line(True, f"phone    {name}: account active")]
    try:
        if cfg.twilio_messaging_service_sid:
            service = client.messaging.v1.services(cfg.twilio_messaging_service_sid).fetch()
            out.append(Line(True, f"sender   messaging service {service.sid} ({service.friendly_name})"))
        else:
            owned = client.incoming_phone_numbers.list(phone_number=cfg.twilio_from_number, limit=1)
            out.append(Line(bool(owned), f"sender   {cfg.twilio_from_number} " + (
                "is one of the account's numbers" if owned else
                "is not among the account's incoming phone numbers (TWILIO_FROM_NUMBER)")))
    except TwilioRestException as exc:
        what = "messaging service " + cfg.twilio_messaging_service_sid \
            if cfg.twilio_messaging_service_sid else cfg.twilio_from_number
        out.append(Line(False, f"sender   {what}: {exc.status} code {exc.code}"
                               + (" (no such messaging service)" if exc.status == 404 else "")))
    return out
