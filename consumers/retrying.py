"""The retry rules of the contract, in one place: the policy (how many attempts, how long
between them) and the flow that applies it to a batch.

- A batch is first decided in one transaction: that is each request's first attempt. A lost
  connection retries the whole transaction under the policy; after the last attempt the
  batch goes back to Kafka and the consumer waits for the database (`DatabaseUnavailable`).
- A fault of the database or of our code (`ops.runtime.faults`: a missing column, a revoked
  privilege, a read-only standby, a bug) fails no request: the batch goes back
  (`DatabaseFault`).
- Any other failure (a lock or statement timeout, one request's data) retries each request
  on its own after the first backoff, so one stuck store costs only its own retry budget.
  A request that fails every attempt is `retries_exhausted`, or `gating_unavailable` when its
  last attempt failed while reading the gating state (fail closed). `attempts` counts
  database attempts, the batch's included.
- The breaker: when every request of the batch, of at least two stores, then fails alone with
  the same data or integrity error, that is no coincidence of their data but the database's
  fault: the batch goes back instead.

The database work itself is a `DecisionStore`, so these rules are tested without one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from consumers.errors import DatabaseFault, DatabaseUnavailable, HandedBack
from consumers.repository import PartitionClaim
from consumers.results import Authenticated, Result, Results, request_ids
from ops.runtime.faults import Fault, classify, describe, is_unreachable, is_worth_retrying
from schemas.events import Reason
from schemas.settings import Settings

log = structlog.get_logger("consumers.batch")

# The breaker: at least this many requests of different stores, each retried alone and each
# failing with the same data or integrity error, are taken for a fault of the database (a
# constraint or a column type changed under us) rather than of every request.
BREAKER_MIN_REQUESTS = 2


def backoff_seconds(settings: Settings, attempt: int) -> float:
    """The delay after attempt `attempt` (1-based): initial * factor^(attempt-1), capped."""
    delay_ms = settings.retry_initial_delay_ms * settings.retry_backoff_factor ** (attempt - 1)
    return min(delay_ms, settings.retry_max_delay_ms) / 1000


def request_retrying(
    settings: Settings,
    *,
    attempts_made: int,
    retry_on: Callable[[BaseException], bool] = is_worth_retrying,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> AsyncRetrying:
    """Retries after `attempts_made` attempts already made (0 for a batch, 1 for a request
    retried alone after its batch).

    Only errors `retry_on` accepts (transient ones by default); at most `RETRY_MAX_ATTEMPTS`
    in all; the first wait is the one the contract gives for the attempt after those made.
    """
    first_wait_ms = settings.retry_initial_delay_ms * settings.retry_backoff_factor**attempts_made
    return AsyncRetrying(
        stop=stop_after_attempt(max(settings.retry_max_attempts - attempts_made, 1)),
        wait=wait_exponential(
            multiplier=first_wait_ms / 1000,
            exp_base=settings.retry_backoff_factor,
            max=settings.retry_max_delay_ms / 1000,
        ),
        retry=retry_if_exception(retry_on),
        reraise=True,
        sleep=sleep,
    )


@dataclass
class Progress:
    """Whether a transaction failed while reading the gating state: then it fails closed
    (`gating_unavailable`) rather than `retries_exhausted`."""

    reading_gating: bool = False


class DecisionStore(Protocol):
    """Decides `items` in one transaction and writes their effects, or raises having written
    nothing (a `HandedBack` when the claim is lost or publishing is paused)."""

    async def decide(
        self,
        items: list[Authenticated],
        claims: Sequence[PartitionClaim],
        *,
        attempts: int,
        progress: Progress,
    ) -> list[Result]: ...


class RetryFlow:
    """The rules above, applied to the requests that passed screening."""

    def __init__(
        self,
        settings: Settings,
        store: DecisionStore,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._settings = settings
        self._store = store
        self._results = Results(settings.topic_dlq)
        self._sleep = sleep

    async def together(
        self, items: list[Authenticated], claims: Sequence[PartitionClaim]
    ) -> list[Result]:
        """One transaction for `items`, retried only on a lost connection: what it raises
        otherwise is the caller's to sort (a `DatabaseFault` for the database's fault)."""
        try:
            return await self._with_connection_retries(items, claims)
        except HandedBack:
            raise
        except Exception as error:
            if classify(error) is Fault.SYSTEMIC:
                raise DatabaseFault(error) from error
            raise

    async def batch(self, items: list[Authenticated], claim: PartitionClaim) -> list[Result]:
        """Every request of one partition's batch decided (or failed) once, in order."""
        if not items:
            return []
        try:
            return await self.together(items, [claim])
        except HandedBack:
            raise
        except Exception as error:
            # A conflict or one request's data: find the request it belongs to by trying
            # each alone.
            log.warning(
                "Batch transaction failed, retrying its requests one by one",
                **_ids(items[0]),
                error=describe(error),
                batchSize=len(items),
            )
        await self._sleep(backoff_seconds(self._settings, 1))
        results: list[Result] = []
        failures: list[BaseException] = []
        for item in items:
            # The batch transaction was each request's first attempt; this is its retry.
            log.warning(
                "Retry attempt",
                attempt=2,
                **_ids(item),
                error="batch transaction failed",
            )
            result, failure = await self._alone(item, claim)
            results.append(result)
            if failure is not None:
                failures.append(failure)
        _break_when_all_failed_alike(items, failures)
        return results

    async def _with_connection_retries(
        self, items: list[Authenticated], claims: Sequence[PartitionClaim]
    ) -> list[Result]:
        """The whole batch in one transaction; a lost connection is retried as the contract says,
        and after the last attempt the batch goes back and the consumer waits for the database."""
        retrying = request_retrying(
            self._settings, attempts_made=0, retry_on=is_unreachable, sleep=self._sleep
        )

        def on_retry(state: RetryCallState) -> None:
            failure = state.outcome.exception() if state.outcome else None
            log.warning(
                "Retry attempt",
                attempt=state.attempt_number + 1,
                **_ids(items[0]),
                batchSize=len(items),
                error=describe(failure) if failure else None,
            )

        retrying.before_sleep = on_retry
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._store.decide(items, claims, attempts=1, progress=Progress())
        except HandedBack:
            raise
        except Exception as error:
            if is_unreachable(error):
                raise DatabaseUnavailable(str(error)) from error
            raise
        raise AssertionError("unreachable")

    async def _alone(
        self, item: Authenticated, claim: PartitionClaim
    ) -> tuple[Result, BaseException | None]:
        """The request's result, and the error that failed it (None when it was decided)."""
        ids = _ids(item)
        attempts = 1  # the batch transaction was this request's first attempt
        progress = Progress()

        def on_retry(state: RetryCallState) -> None:
            failure = state.outcome.exception() if state.outcome else None
            log.warning(
                "Retry attempt",
                attempt=attempts + state.attempt_number + 1,
                **ids,
                error=describe(failure) if failure else None,
            )

        retrying = request_retrying(self._settings, attempts_made=attempts, sleep=self._sleep)
        retrying.before_sleep = on_retry
        made = attempts
        try:
            async for try_ in retrying:
                with try_:
                    made += 1
                    progress = Progress()
                    decided = await self._store.decide(
                        [item], [claim], attempts=made, progress=progress
                    )
                    return decided[0], None
        except HandedBack:
            raise
        except Exception as error:
            fault = classify(error)
            if fault is Fault.UNREACHABLE:
                raise DatabaseUnavailable(str(error)) from error
            if fault is Fault.SYSTEMIC:
                raise DatabaseFault(error) from error
            reason = (
                Reason.GATING_UNAVAILABLE if progress.reading_gating else Reason.RETRIES_EXHAUSTED
            )
            return self._results.failed(item, reason, made, describe(error)), error
        raise AssertionError("unreachable")


def _ids(item: Authenticated) -> dict[str, object]:
    """A retry line's request ids: a batch's lines name its first request."""
    return request_ids(item.record, item.request.effective_correlation_id)


def _break_when_all_failed_alike(
    items: Sequence[Authenticated], failures: Sequence[BaseException]
) -> None:
    """Every request of the batch failing alone with the same error is no coincidence of
    their data: treat it as the database's fault and hand the batch back."""
    kinds = {type(failure) for failure in failures}
    stores = {item.request.store_id for item in items}
    if (
        len(failures) == len(items) >= BREAKER_MIN_REQUESTS
        and len(stores) > 1
        and len(kinds) == 1
        # Conflicts (lock and statement timeouts) are foreseen and keep their contract:
        # a gating read that cannot be made fails closed, a stuck store fails its own
        # requests.
        and classify(failures[0]) is Fault.REQUEST
    ):
        raise DatabaseFault(
            failures[0],
            f"every request of the batch failed alike: {describe(failures[0])}",
        ) from failures[0]
