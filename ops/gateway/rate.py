"""Per-user rate limit: a bucket of `per_minute` requests per user, refilled evenly.

A user may send a burst of `per_minute` at once (the guide's load test sends ten together)
and then one every `60 / per_minute` seconds. Per process: behind several gateways a user
gets each one's allowance, which bounds abuse without a shared store.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable

MonotonicClock = Callable[[], float]
# Buckets full again are forgotten once this many users have been seen.
_PRUNE_AT = 100_000


class RateLimiter:
    def __init__(self, per_minute: int, clock: MonotonicClock = time.monotonic) -> None:
        self._capacity = float(per_minute)
        self._per_second = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[uuid.UUID, tuple[float, float]] = {}

    def take(self, user: uuid.UUID) -> int | None:
        """None when `user` may go ahead (one request counted); else the whole seconds
        until they may (`Retry-After`)."""
        now = self._clock()
        tokens, since = self._buckets.get(user, (self._capacity, now))
        tokens = min(self._capacity, tokens + (now - since) * self._per_second)
        if tokens >= 1.0:
            self._buckets[user] = (tokens - 1.0, now)
            if len(self._buckets) > _PRUNE_AT:
                self._prune(now)
            return None
        self._buckets[user] = (tokens, now)
        return max(1, math.ceil((1.0 - tokens) / self._per_second))

    def _prune(self, now: float) -> None:
        full = [
            user
            for user, (tokens, since) in self._buckets.items()
            if tokens + (now - since) * self._per_second >= self._capacity
        ]
        for user in full:
            del self._buckets[user]
