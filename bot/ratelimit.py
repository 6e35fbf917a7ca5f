"""Hotline's share of the Zendesk account's per-minute API limit, shared by every worker.

A fixed one-minute window counted in Redis. Over budget, the call is not made:
the job gets a TransientError with the seconds left in the window and
reschedules itself, as it would for a 429.
"""
from __future__ import annotations

import time

import redis

from bot.errors import TransientError

KEY = "hotline:zendesk-budget:"


class MinuteBudget:
    def __init__(self, conn: redis.Redis, per_minute: int):
        self.conn, self.per_minute = conn, per_minute

    def take(self) -> None:
        """Count one call, or raise TransientError when this minute's budget is spent."""
        if not self.per_minute:
            return
        now = time.time()
        window = int(now // 60)
        pipe = self.conn.pipeline(transaction=True)
        pipe.incr(KEY + str(window))
        pipe.expire(KEY + str(window), 120)
        used, _ = pipe.execute()
        if used > self.per_minute:
            raise TransientError("Hotline's share of the Zendesk rate limit is used up",
                                 retry_after=max(1.0, 60 - now % 60))
