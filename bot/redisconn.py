"""Redis connections, from REDIS_URL (plain or Sentinel).

The web tier uses short timeouts and no retries: a slow Redis must make the
webhook spool the event, not make Twilio wait (SPEC 3.4).
"""
from __future__ import annotations

from urllib.parse import urlparse

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

# What a Redis that cannot take a write looks like to us.
UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError, redis.ResponseError,
               redis.exceptions.ReadOnlyError, OSError)


def parse_sentinel_url(url: str) -> dict | None:
    """`redis+sentinel://[:password@]h1:26379,h2:26379/master[/db]` → settings, else None."""
    parts = urlparse(url)
    if parts.scheme not in ("redis+sentinel", "sentinel"):
        return None
    hostlist = parts.netloc.rsplit("@", 1)[-1]
    instances = []
    for item in hostlist.split(","):
        host, _, port = item.partition(":")
        instances.append((host, int(port or 26379)))
    path = [p for p in parts.path.split("/") if p]
    return {
        "INSTANCES": instances,
        "MASTER_NAME": path[0] if path else "mymaster",
        "DB": int(path[1]) if len(path) > 1 else 0,
        "PASSWORD": parts.password,
    }


def connect(url: str, timeout: float | None = None) -> redis.Redis:
    """A client for `url`; with `timeout`, every call fails fast and is not retried."""
    kwargs = {}
    if timeout is not None:
        kwargs = {"socket_timeout": timeout, "socket_connect_timeout": timeout,
                  "retry": Retry(NoBackoff(), 0)}
    sentinel = parse_sentinel_url(url)
    if sentinel:
        sn = Sentinel(sentinel["INSTANCES"], socket_timeout=timeout,
                      password=sentinel["PASSWORD"], db=sentinel["DB"])
        return sn.master_for(sentinel["MASTER_NAME"], **kwargs)
    return redis.Redis.from_url(url, **kwargs)
