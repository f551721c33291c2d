"""The per-user rate limit: a burst of the per-minute allowance, then one per 60/N seconds."""

from __future__ import annotations

import uuid

from ops.gateway.rate import RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_of_the_allowance_passes_and_the_next_is_told_when_to_retry() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, clock)
    user = uuid.uuid4()
    assert [limiter.take(user) for _ in range(10)] == [None] * 10
    assert limiter.take(user) == 6  # one request back every 6 s


def test_the_allowance_refills_with_time() -> None:
    clock = FakeClock()
    limiter = RateLimiter(60, clock)
    user = uuid.uuid4()
    for _ in range(60):
        assert limiter.take(user) is None
    assert limiter.take(user) == 1
    clock.now += 1.0
    assert limiter.take(user) is None


def test_users_have_allowances_of_their_own() -> None:
    limiter = RateLimiter(1, FakeClock())
    first, second = uuid.uuid4(), uuid.uuid4()
    assert limiter.take(first) is None
    assert limiter.take(first) is not None
    assert limiter.take(second) is None
