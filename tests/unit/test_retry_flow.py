"""The retry rules (consumers/retrying.py) with a store in memory: attempts counted as the
contract says, one stuck store costing only its own budget, failing closed on the gating
read, the breaker, and what goes back to Kafka instead of failing anyone."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from consumers.errors import DatabaseFault, DatabaseUnavailable, PublishingPaused
from consumers.retrying import RetryFlow
from schemas.events import Reason, Status
from schemas.settings import Settings
from tests.helpers.decision_store import CLAIM, ScriptedStore, authenticated

LOCK_TIMEOUT = asyncpg.exceptions.LockNotAvailableError
BAD_VALUE = asyncpg.exceptions.NumericValueOutOfRangeError  # 22003: one request's data


def _settings() -> Settings:
    return Settings(
        retry_max_attempts=3,
        retry_initial_delay_ms=1000,
        retry_backoff_factor=2,
        retry_max_delay_ms=5000,
    )


class Sleeps:
    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


def _flow(store: ScriptedStore) -> tuple[RetryFlow, Sleeps]:
    sleeps = Sleeps()
    return RetryFlow(_settings(), store, sleep=sleeps), sleeps


async def test_a_batch_that_goes_through_is_one_attempt_for_every_request() -> None:
    store = ScriptedStore()
    flow, sleeps = _flow(store)
    results = await flow.batch([authenticated(i) for i in range(3)], CLAIM)
    assert [r.outcome.status for r in results] == [Status.PUBLISHED] * 3
    assert [r.outcome.attempts for r in results] == [1, 1, 1]
    assert len(store.calls) == 1
    assert sleeps.seconds == []


async def test_one_stuck_store_costs_its_own_budget_and_no_one_elses() -> None:
    stuck = uuid.uuid4()
    items = [authenticated(0), authenticated(1, stuck), authenticated(2)]
    store = ScriptedStore()
    store.fail[stuck] = [LOCK_TIMEOUT("lock timeout")] * 3  # the batch and both retries alone
    flow, sleeps = _flow(store)
    results = await flow.batch(items, CLAIM)
    assert [r.outcome.status for r in results] == [
        Status.PUBLISHED,
        Status.FAILED,
        Status.PUBLISHED,
    ]
    assert results[1].outcome.reason is Reason.RETRIES_EXHAUSTED
    # Attempts count database attempts, the batch's included: the others' second attempt
    # went through, the stuck one used all three.
    assert [r.outcome.attempts for r in results] == [2, 3, 2]
    assert results[1].dead_letter is not None
    assert results[0].dead_letter is None
    assert results[2].dead_letter is None
    # The backoff the contract gives: 1 s after the batch, then 2 s before the third attempt.
    assert sleeps.seconds == [1.0, 2.0]
    assert [call.attempts for call in store.calls] == [1, 2, 2, 3, 2]


async def test_a_request_that_cannot_read_the_gating_state_fails_closed() -> None:
    stuck = uuid.uuid4()
    store = ScriptedStore(fail_in_gating=True)
    store.fail[stuck] = [LOCK_TIMEOUT("lock timeout")] * 3
    flow, _ = _flow(store)
    [result] = await flow.batch([authenticated(0, stuck)], CLAIM)
    assert result.outcome.status is Status.FAILED
    assert result.outcome.reason is Reason.GATING_UNAVAILABLE
    assert result.outcome.attempts == 3


async def test_a_retry_that_succeeds_publishes_with_its_attempt_count() -> None:
    slow = uuid.uuid4()
    store = ScriptedStore()
    store.fail[slow] = [LOCK_TIMEOUT("lock timeout")] * 2  # the batch and the first alone
    flow, _ = _flow(store)
    [result] = await flow.batch([authenticated(0, slow)], CLAIM)
    assert (result.outcome.status, result.outcome.attempts) == (Status.PUBLISHED, 3)


async def test_the_breaker_hands_back_a_batch_whose_requests_all_fail_alike() -> None:
    items = [authenticated(i) for i in range(3)]
    store = ScriptedStore()
    for item in items:
        store.fail[item.request.store_id] = [BAD_VALUE("out of range")] * 3
    flow, _ = _flow(store)
    with pytest.raises(DatabaseFault) as raised:
        await flow.batch(items, CLAIM)
    assert raised.value.sqlstate == "22003"
    assert "every request of the batch failed alike" in raised.value.error


async def test_the_breaker_needs_two_stores_one_stores_bad_data_fails_it_alone() -> None:
    store_id = uuid.uuid4()
    items = [authenticated(0, store_id), authenticated(1, store_id)]
    store = ScriptedStore()
    store.fail[store_id] = [BAD_VALUE("out of range")] * 3
    flow, _ = _flow(store)
    results = await flow.batch(items, CLAIM)
    # Not handed back: both fail on their own. A data error is not worth retrying: the
    # batch, then one attempt alone each.
    assert [r.outcome.reason for r in results] == [Reason.RETRIES_EXHAUSTED] * 2
    assert [r.outcome.attempts for r in results] == [2, 2]
    assert [call.attempts for call in store.calls] == [1, 2, 2]


async def test_only_some_failing_alike_is_their_own_fault_not_the_databases() -> None:
    items = [authenticated(i) for i in range(3)]
    store = ScriptedStore()
    for item in items[:2]:
        store.fail[item.request.store_id] = [BAD_VALUE("out of range")] * 3
    flow, _ = _flow(store)
    results = await flow.batch(items, CLAIM)
    assert [r.outcome.status for r in results] == [Status.FAILED, Status.FAILED, Status.PUBLISHED]


async def test_a_lost_connection_retries_the_whole_batch_then_hands_it_back() -> None:
    store = ScriptedStore(fail_every_batch=[ConnectionRefusedError("refused")] * 3)
    flow, sleeps = _flow(store)
    with pytest.raises(DatabaseUnavailable):
        await flow.batch([authenticated(0), authenticated(1)], CLAIM)
    assert [call.attempts for call in store.calls] == [1, 1, 1]
    assert sleeps.seconds == [1.0, 2.0]


async def test_a_connection_back_in_time_decides_the_batch_as_its_first_attempt() -> None:
    store = ScriptedStore(fail_every_batch=[ConnectionRefusedError("refused")])
    flow, _ = _flow(store)
    results = await flow.batch([authenticated(0), authenticated(1)], CLAIM)
    assert [r.outcome.attempts for r in results] == [1, 1]


async def test_a_fault_of_the_database_fails_no_one_and_is_not_retried() -> None:
    store = ScriptedStore(
        fail_every_batch=[asyncpg.exceptions.InsufficientPrivilegeError("permission denied")]
    )
    flow, sleeps = _flow(store)
    with pytest.raises(DatabaseFault) as raised:
        await flow.batch([authenticated(0), authenticated(1)], CLAIM)
    assert raised.value.sqlstate == "42501"
    assert len(store.calls) == 1
    assert sleeps.seconds == []


async def test_a_pause_found_in_the_transaction_goes_back_untouched() -> None:
    store = ScriptedStore(fail_every_batch=[PublishingPaused()])
    flow, sleeps = _flow(store)
    with pytest.raises(PublishingPaused):
        await flow.batch([authenticated(0), authenticated(1)], CLAIM)
    assert len(store.calls) == 1
    assert sleeps.seconds == []
