"""The retry policy: the contract's delays, its attempt limit, and transient errors only."""

from __future__ import annotations

import asyncpg
import pytest

from consumers.retrying import backoff_seconds, request_retrying
from schemas.settings import Settings


def settings(**overrides: object) -> Settings:
    return Settings(_env_file=None, **overrides)  # type: ignore[arg-type]


class Calls:
    """An operation that raises `error` every time, counting calls and the waits between them."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error
        self.calls = 0
        self.waits: list[float] = []

    async def operation(self) -> str:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return "done"

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)


async def run(policy: Settings, error: BaseException | None, *, attempts_made: int = 0) -> Calls:
    calls = Calls(error)
    retrying = request_retrying(policy, attempts_made=attempts_made).copy(sleep=calls.sleep)
    if error is None:
        assert await retrying(calls.operation) == "done"
    else:
        with pytest.raises(type(error)):
            await retrying(calls.operation)
    return calls


CONTRACT = settings(
    retry_max_attempts=3,
    retry_initial_delay_ms=1000,
    retry_backoff_factor=2,
    retry_max_delay_ms=5000,
)


@pytest.mark.parametrize(
    ("attempt", "seconds"), [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (10, 5.0)]
)
def test_backoff_starts_at_1000_ms_doubles_and_is_capped_at_5000_ms(
    attempt: int, seconds: float
) -> None:
    assert backoff_seconds(CONTRACT, attempt) == seconds


def test_backoff_follows_configured_values_the_runbook_may_lower() -> None:
    lowered = settings(retry_initial_delay_ms=100, retry_backoff_factor=3, retry_max_delay_ms=500)
    assert [backoff_seconds(lowered, n) for n in (1, 2, 3)] == [0.1, 0.3, 0.5]


async def test_transient_error_is_tried_at_most_retry_max_attempts_with_contract_waits() -> None:
    calls = await run(CONTRACT, asyncpg.exceptions.SerializationError("40001"))
    assert calls.calls == 3
    assert calls.waits == [1.0, 2.0]


async def test_waits_are_capped_at_retry_max_delay() -> None:
    many = settings(retry_max_attempts=6, retry_max_delay_ms=5000)
    calls = await run(many, asyncpg.exceptions.DeadlockDetectedError("40P01"))
    assert calls.calls == 6
    assert calls.waits == [1.0, 2.0, 4.0, 5.0, 5.0]


async def test_attempts_made_in_the_batch_count_towards_the_limit_and_the_next_wait() -> None:
    calls = await run(CONTRACT, asyncpg.exceptions.LockNotAvailableError("55P03"), attempts_made=1)
    assert calls.calls == 2
    assert calls.waits == [2.0]


async def test_a_request_out_of_attempts_still_gets_one_try() -> None:
    calls = await run(CONTRACT, asyncpg.exceptions.QueryCanceledError("57014"), attempts_made=3)
    assert calls.calls == 1
    assert calls.waits == []


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.UniqueViolationError("23505"),
        asyncpg.exceptions.ForeignKeyViolationError("23503"),
        ValueError("bad value"),
        RuntimeError("published 0 of 1 stores"),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_permanent_error_is_not_retried(error: BaseException) -> None:
    calls = await run(CONTRACT, error)
    assert calls.calls == 1
    assert calls.waits == []


async def test_success_needs_no_retry() -> None:
    calls = await run(CONTRACT, None)
    assert (calls.calls, calls.waits) == (1, [])
