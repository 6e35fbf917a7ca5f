"""Hotline's share of the Zendesk account's API limit, shared by every worker (SPEC 10, 12).

Three things, all in Redis so every worker process sees them at once:

- a **pause**: the first 429 (or a response saying the minute's requests are
  all used) sets "no Zendesk call before T"; every worker honours it without
  calling, so one worker's 429 is not repeated by the others;
- the account's **limit as Zendesk reports it** (`X-Rate-Limit` /
  `ratelimit-limit` on every response): Hotline's per-minute budget is the
  smaller of the configured figure and `SHARE` of that;
- a **per-minute budget**: a fixed one-minute window counted in Redis.

Over budget or paused, the call is not made: the job gets `Throttled` (a
`TransientError` with the seconds to wait) and is scheduled for then.
"""
from __future__ import annotations

import time

import redis

from bot.errors import Throttled

KEY = "hotline:zendesk-budget:"
PAUSE = "hotline:zendesk-pause-until"      # ms timestamp; absent: no pause
LIMIT = "hotline:zendesk-limit"            # the account's per-minute limit, as last reported
SHARE = 0.8                                # leave the rest to agents' apps and integrations
LIMIT_TTL = 3600

# Raise the pause to ARGV[1] (ms) unless it already reaches further.
_PAUSE = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""


def _header(headers, *names) -> float | None:
    for name in names:
        value = headers.get(name)
        if value is not None:
            try:
                return float(value)
            except ValueError:
                continue
    return None


class ZendeskGate:
    """Decides whether a Zendesk call may go now, and learns from each answer."""

    def __init__(self, conn: redis.Redis, per_minute: int):
        self.conn, self.per_minute = conn, per_minute

    def budget(self) -> int:
        """This minute's budget: the configured figure, or less when Zendesk says the account has less."""
        learned = self.conn.get(LIMIT)
        if learned is None:
            return self.per_minute
        share = max(1, int(float(learned) * SHARE))
        return min(self.per_minute, share) if self.per_minute else share

    def take(self) -> None:
        """Count one call, or raise Throttled when paused or this minute's budget is spent."""
        now = time.time()
        window = int(now // 60)
        paused = self.conn.get(PAUSE)
        if paused and float(paused) / 1000 > now:
            raise Throttled("Zendesk asked Hotline to wait (429)",
                            retry_after=float(paused) / 1000 - now)
        limit = self.budget()
        if not limit:
            return
        pipe = self.conn.pipeline(transaction=True)
        pipe.incr(KEY + str(window))
        pipe.expire(KEY + str(window), 120)
        used, _ = pipe.execute()
        if used > limit:
            raise Throttled("Hotline's share of the Zendesk rate limit is used up",
                            retry_after=max(1.0, 60 - now % 60))

    def pause(self, seconds: float) -> None:
        """No worker calls Zendesk for `seconds` (from a 429's `Retry-After`)."""
        until = int((time.time() + seconds) * 1000)
        self.conn.eval(_PAUSE, 1, PAUSE, until, max(1, int(seconds * 1000)))

    def observe(self, headers) -> None:
        """Learn the account's limit, and pause when the minute's requests are used up."""
        limit = _header(headers, "X-Rate-Limit", "ratelimit-limit")
        if limit:
            self.conn.set(LIMIT, int(limit), ex=LIMIT_TTL)
        remaining = _header(headers, "X-Rate-Limit-Remaining", "ratelimit-remaining")
        if remaining is not None and remaining <= 0:
            reset = _header(headers, "ratelimit-reset")
            self.pause(reset if reset is not None else max(1.0, 60 - time.time() % 60))
