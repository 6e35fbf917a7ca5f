"""Configuration from the environment (SPEC 2).

Every name read here is listed in `.env.example`. `.env` is read when present,
but never overrides a variable the environment already sets.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The webhook secrets local mode makes for itself when none are set (SPEC 2).
# SECRET_KEY signs the operators' console cookies (SPEC 6).
LOCAL_SECRETS = ("TWILIO_AUTH_TOKEN", "ZENDESK_WEBHOOK_SECRET", "SENDGRID_INBOUND_USER",
                 "SENDGRID_INBOUND_PASSWORD", "SECRET_KEY")

RUN_ENV = ROOT / "var" / "run.env"


def load_dotenv_once() -> None:
    """Read `.env` from the project root, if there is one.

    Also `var/run.env`, which `make run` writes while it runs (local mode, its
    Redis and URL), so `flask hotline …` in another terminal talks to it.
    """
    from dotenv import load_dotenv

    load_dotenv(ROOT / ".env", override=False)
    load_dotenv(RUN_ENV, override=False)


def local_secrets(folder: Path) -> dict[str, str]:
    """This checkout's local-mode webhook secrets, made at random on first use.

    The local service checks every webhook against them and `flask hotline
    simulate` signs with them, so local mode fails closed like production.
    They live in `folder/local-secrets.json`, readable by the owner only.
    """
    path = folder / "local-secrets.json"
    try:
        kept = json.loads(path.read_text())
        if all(name in kept for name in LOCAL_SECRETS):
            return kept
        # made by an older version: keep those, add the new ones
        _publish(path, {**{n: secrets.token_urlsafe(24) for n in LOCAL_SECRETS}, **kept}, replace=True)
        return json.loads(path.read_text())
    except FileNotFoundError:
        pass
    folder.mkdir(parents=True, exist_ok=True)
    made = {name: secrets.token_urlsafe(24) for name in LOCAL_SECRETS}
    made["SENDGRID_INBOUND_USER"] = "local"
    if not _publish(path, made):  # another process made them first
        return json.loads(path.read_text())
    return made


def _publish(path: Path, data: dict, replace: bool = False) -> bool:
    """Write `data` to `path` whole or not at all (a private file, then a link or a rename), so
    the web workers and the worker starting together never read a half-written file. Without
    `replace`, False when the file was already there."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".local-secrets-")  # mode 0600
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh)
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _path(value: str) -> Path:
    """Relative paths are read from the project root, whatever the working directory."""
    path = Path(value)
    return path if path.is_absolute() else ROOT / path


def _bool(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def reply_queue(queue_name: str) -> str:
    """The replies queue that goes with `queue_name`: first replies to new conversations."""
    return f"{queue_name}-replies"


@dataclass(frozen=True)
class Config:
    redis_url: str = "redis://127.0.0.1:6379/0"
    public_base_url: str = "http://127.0.0.1:8000"
    local_mode: bool = False
    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_from_number: str = ""
    twilio_messaging_service_sid: str = ""
    zendesk_subdomain: str = ""
    zendesk_email: str = ""
    zendesk_api_token: str = ""
    zendesk_webhook_secret: str = ""
    sendgrid_inbound_user: str = ""
    sendgrid_inbound_password: str = ""
    admin_password: str = ""
    metrics_token: str = ""
    secret_key: str = ""
    settings_path: Path = ROOT / "config" / "settings.yaml"
    templates_dir: Path = ROOT / "templates"
    spool_dir: Path = ROOT / "var" / "spool"
    local_db: Path = ROOT / "var" / "local.sqlite3"
    queue_name: str = "hotline"
    urgent_queue_name: str = "hotline-urgent"   # emergencies' jobs; workers listen to it first
    max_body_bytes: int = 64 * 1024
    web_redis_timeout: float = 0.25
    http_timeout: float = 10.0
    maintenance_interval: float = 2.0
    proxy_hops: int = 0   # proxies in front of the web tier whose X-Forwarded-For is trusted

    @property
    def reply_queue_name(self) -> str:
        """First replies to new conversations, taken after the urgent queue: `<queue>-replies`."""
        return reply_queue(self.queue_name)

    @property
    def queues(self) -> tuple[str, str, str]:
        """The queues a worker listens on, the one it takes first first (SPEC 12): emergencies,
        then the first replies of new conversations, then everything else."""
        return (self.urgent_queue_name, self.reply_queue_name, self.queue_name)

    @classmethod
    def from_env(cls, env: dict | None = None) -> "Config":
        """Build the configuration from `env` (default: `os.environ`)."""
        env = os.environ if env is None else env
        local = _bool(env.get("HOTLINE_LOCAL_MODE"))

        def get(name: str, default: str = "") -> str:
            return (env.get(name) or default).strip()

        local_db = _path(get("HOTLINE_LOCAL_DB", str(cls.local_db)))
        if local and not all(get(name) for name in LOCAL_SECRETS):
            made = local_secrets(local_db.parent)
            env = {**made, **{k: v for k, v in env.items() if v}}

        return cls(
            redis_url=get("REDIS_URL", cls.redis_url),
            public_base_url=get("PUBLIC_BASE_URL", cls.public_base_url).rstrip("/"),
            local_mode=local,
            twilio_account_sid=get("TWILIO_ACCOUNT_SID"),
            twilio_auth_token=get("TWILIO_AUTH_TOKEN"),
            twilio_from_number=get("TWILIO_FROM_NUMBER"),
            twilio_messaging_service_sid=get("TWILIO_MESSAGING_SERVICE_SID"),
            zendesk_subdomain=get("ZENDESK_SUBDOMAIN"),
            zendesk_email=get("ZENDESK_EMAIL"),
            zendesk_api_token=get("ZENDESK_API_TOKEN"),
            zendesk_webhook_secret=get("ZENDESK_WEBHOOK_SECRET"),
            sendgrid_inbound_user=get("SENDGRID_INBOUND_USER"),
            sendgrid_inbound_password=get("SENDGRID_INBOUND_PASSWORD"),
            admin_password=get("ADMIN_PASSWORD"),
            metrics_token=get("METRICS_TOKEN"),
            secret_key=get("SECRET_KEY"),
            settings_path=_path(get("HOTLINE_SETTINGS", str(cls.settings_path))),
            templates_dir=_path(get("HOTLINE_TEMPLATES_DIR", str(cls.templates_dir))),
            spool_dir=_path(get("HOTLINE_SPOOL_DIR", str(cls.spool_dir))),
            local_db=local_db,
            queue_name=get("HOTLINE_QUEUE", cls.queue_name),
            urgent_queue_name=get("HOTLINE_URGENT_QUEUE", cls.urgent_queue_name),
            max_body_bytes=int(get("HOTLINE_MAX_BODY_BYTES", str(cls.max_body_bytes))),
            http_timeout=float(get("HOTLINE_HTTP_TIMEOUT", str(cls.http_timeout))),
            maintenance_interval=float(
                get("HOTLINE_MAINTENANCE_INTERVAL", str(cls.maintenance_interval))
            ),
            proxy_hops=int(get("HOTLINE_PROXY_HOPS", str(cls.proxy_hops))),
        )

    @property
    def has_zendesk(self) -> bool:
        return bool(self.zendesk_subdomain and self.zendesk_email and self.zendesk_api_token)

    @property
    def has_twilio(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token
                    and (self.twilio_from_number or self.twilio_messaging_service_sid))
