"""The objects a process needs, built once from the configuration.

Jobs call `get()`; tests call `reset()` after changing the environment.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import redis

from bot import logs, metrics, redisconn
from bot.config import Config, load_dotenv_once
from bot.desk import Desk
from bot.phone import Phone
from bot.replies import Templates
from bot.settings import Settings, load_settings


@dataclass
class Runtime:
    config: Config
    settings: Settings
    redis: redis.Redis
    desk: Desk
    phone: Phone
    templates: Templates


class ConfigurationError(RuntimeError):
    """The service cannot start with this configuration."""


def make_desk(config: Config, conn: redis.Redis | None = None,
              settings: Settings | None = None) -> Desk:
    if config.has_zendesk:
        from bot.desk.zendesk import ZendeskDesk
        from bot.ratelimit import ZendeskGate

        gate = ZendeskGate(conn, settings.zendesk_requests_per_minute) if conn and settings else None
        return ZendeskDesk(config.zendesk_subdomain, config.zendesk_email,
                           config.zendesk_api_token, timeout=config.http_timeout, gate=gate,
                           record=functools.partial(metrics.api_request, conn, "zendesk"))
    if config.local_mode:
        from bot.desk.local import LocalDesk

        return LocalDesk(config.local_db, config.public_base_url)
    raise ConfigurationError("no Zendesk credentials and not in local mode (HOTLINE_LOCAL_MODE=1)")


def make_phone(config: Config, conn: redis.Redis | None = None) -> Phone:
    if config.has_twilio:
        from bot.phone.twilio import TwilioPhone

        return TwilioPhone(config.twilio_account_sid, config.twilio_auth_token,
                           config.twilio_from_number, config.twilio_messaging_service_sid,
                           timeout=config.http_timeout,
                           status_callback=config.public_base_url + "/twilio/sms/status",
                           record=functools.partial(metrics.api_request, conn, "twilio"))
    if config.local_mode:
        from bot.phone.outbox import LocalOutbox

        return LocalOutbox(config.local_db)
    raise ConfigurationError("no Twilio credentials and not in local mode (HOTLINE_LOCAL_MODE=1)")


def load(config: Config | None = None) -> tuple[Config, Settings, Templates]:
    """Configuration, checked settings and templates: what web and worker both start from.

    Raises on broken settings or templates, so neither starts with them.
    """
    if config is None:
        load_dotenv_once()
        config = Config.from_env()
    logs.setup()
    settings = load_settings(config.settings_path)
    templates = Templates(config.templates_dir)
    templates.check()
    return config, settings, templates


def build(config: Config | None = None) -> Runtime:
    """Everything a worker needs; raises on a configuration that cannot run."""
    config, settings, templates = load(config)
    conn = redisconn.connect(config.redis_url)
    return Runtime(config=config, settings=settings, redis=conn,
                   desk=make_desk(config, conn, settings), phone=make_phone(config, conn),
                   templates=templates.attach(conn))


@functools.lru_cache(maxsize=1)
def get() -> Runtime:
    """This process's runtime, built on first use."""
    return build()


def reset() -> None:
    get.cache_clear()
