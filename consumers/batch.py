"""One partition's batch: screen, load in bulk, decide, write in one transaction, build outcomes.

The fast path decides the whole batch in one transaction. What happens when it fails depends
on whose fault it is (`ops.runtime.faults`): the database gone or refusing every request alike
(a renamed column, a revoked privilege, a read-only standby, a bug of ours) hands the batch
back and the consumer pauses, failing nothing; a transient conflict or a failure tied to one
request's data retries each request on its own, so one stuck store costs its own retry budget
and no one else's. If every request of the batch then fails alike, that too is the database's
fault, not theirs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import structlog
from tenacity import RetryCallState

from consumers import repository as repo
from consumers.decision import Facts, Verdict, decide_batch
from consumers.effects import Decided, effects_of
from consumers.errors import (
    DatabaseFault,
    DatabaseUnavailable,
    DecideSeparately,
    HandedBack,
    PartitionLost,
    PublishingPaused,
)
from consumers.outcomes import (
    InboundRecord,
)
from consumers.results import Authenticated, Result, Results
from consumers.retrying import backoff_seconds, request_retrying
from consumers.screening import Refusal, screen
from ops.runtime.faults import Fault, classify, describe, is_unreachable
from schemas.events import Reason
from schemas.settings import Settings

log = structlog.get_logger("consumers.batch")


@dataclass
class _Progress:
    """Whether a transaction failed while reading the gating state: then it fails closed
    (`gating_unavailable`) rather than `retries_exhausted`."""

    reading_gating: bool = False


# The breaker: at least this many requests of different stores, each retried alone and each
# failing with the same data or integrity error, are taken for a fault of the database (a
# constraint or a column type changed under us) rather than of every request.
_BREAKER_MIN_REQUESTS = 2


class BatchHandler:
    def __init__(self, settings: Settings, pool: asyncpg.Pool) -> None:
        self._settings = settings
        self._pool = pool
        self._results = Results(settings.topic_dlq)
        secret = settings.event_signing_secret
        self._secret = secret.get_secret_value().encode("utf-8") if secret else None

    async def handle(
        self, records: Sequence[InboundRecord], claim: repo.PartitionClaim
    ) -> list[Result]:
        """Every record gets exactly one Result, in order. Raises a `HandedBack` (paused,
        database unavailable or at fault, partition lost) when the batch must go back to
        Kafka untouched."""
        refused, authenticated = self._screen(records)
        return _in_order(len(records), refused, await self._decide(authenticated, claim))

    async def handle_together(
        self, batches: Sequence[tuple[Sequence[InboundRecord], repo.PartitionClaim]]
    ) -> list[list[Result]]:
        """Several partitions' batches in one transaction; each batch's results, in order.

        Raises `DecideSeparately` when that transaction cannot go through as a whole and
        wrote nothing: a claim lost, or a failure that may be one request's (it is then found
        by deciding each partition, and each request, on its own). A database unavailable, at
        fault or paused raises as `handle` does, for every batch."""
        screened = [self._screen(records) for records, _ in batches]
        items = [item for _, authenticated in screened for item in authenticated]
        decided: list[Result] = []
        if items:
            try:
                decided = await self._transaction_with_connection_retries(
                    items, [claim for _, claim in batches]
                )
            except PartitionLost as error:
                raise DecideSeparately(f"partition lost: {error}") from error
            except HandedBack:
                raise
            except Exception as error:
                if classify(error) is Fault.SYSTEMIC:
                    raise DatabaseFault(error) from error
                raise DecideSeparately(describe(error)) from error
        results: list[list[Result]] = []
        taken = 0
        for (records, _), (refused, authenticated) in zip(batches, screened, strict=True):
            mine = decided[taken : taken + len(authenticated)]
            taken += len(authenticated)
            results.append(_in_order(len(records), refused, mine))
        return results

    def _screen(
        self, records: Sequence[InboundRecord]
    ) -> tuple[dict[int, Result], list[Authenticated]]:
        """The results of the records refused on their bytes, by position, and the rest."""
        refused: dict[int, Result] = {}
        authenticated: list[Authenticated] = []
        for index, record in enumerate(records):
            screened = screen(
                record.value,
                record.headers,
                max_bytes=self._settings.max_event_bytes,
                secret=self._secret,
            )
            if isinstance(screened, Refusal):
                refused[index] = self._results.refused(record, screened)
            else:
                authenticated.append(Authenticated(record, screened))
        return refused, authenticated

    async def _decide(self, items: list[Authenticated], claim: repo.PartitionClaim) -> list[Result]:
        if not items:
            return []
        try:
            return await self._transaction_with_connection_retries(items, [claim])
        except HandedBack:
            raise
        except Exception as error:
            if classify(error) is Fault.SYSTEMIC:
                raise DatabaseFault(error) from error
            # A conflict or one request's data: find the request it belongs to by trying
            # each alone.
            log.warning(
                "Batch transaction failed, retrying its requests one by one",
                error=describe(error),
                batchSize=len(items),
            )
        await asyncio.sleep(backoff_seconds(self._settings, 1))
        results: list[Result] = []
        failures: list[BaseException] = []
        for item in items:
            # The batch transaction was each request's first attempt; this is its retry.
            log.warning(
                "Retry attempt",
                attempt=2,
                correlationId=item.request.effective_correlation_id,
                error="batch transaction failed",
            )
            result, failure = await self._decide_alone(item, claim)
            results.append(result)
            if failure is not None:
                failures.append(failure)
        self._break_when_all_failed_alike(items, failures)
        return results

    def _break_when_all_failed_alike(
        self, items: list[Authenticated], failures: list[BaseException]
    ) -> None:
        """Every request of the batch failing alone with the same error is no coincidence of
        their data: treat it as the database's fault and hand the batch back."""
        kinds = {type(failure) for failure in failures}
        stores = {item.request.store_id for item in items}
        if (
            len(failures) == len(items) >= _BREAKER_MIN_REQUESTS
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

    async def _transaction_with_connection_retries(
        self, items: list[Authenticated], claims: Sequence[repo.PartitionClaim]
    ) -> list[Result]:
        """The whole batch in one transaction; a lost connection is retried as the contract says,
        and after the last attempt the batch goes back and the consumer waits for the database."""
        retrying = request_retrying(self._settings, attempts_made=0, retry_on=is_unreachable)

        def on_retry(state: RetryCallState) -> None:
            failure = state.outcome.exception() if state.outcome else None
            log.warning(
                "Retry attempt",
                attempt=state.attempt_number + 1,
                correlationId=items[0].request.effective_correlation_id,
                batchSize=len(items),
                error=describe(failure) if failure else None,
            )

        retrying.before_sleep = on_retry
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._transaction(items, claims, attempts=1, progress=_Progress())
        except HandedBack:
            raise
        except Exception as error:
            if is_unreachable(error):
                raise DatabaseUnavailable(str(error)) from error
            raise
        raise AssertionError("unreachable")

    async def _decide_alone(
        self, item: Authenticated, claim: repo.PartitionClaim
    ) -> tuple[Result, BaseException | None]:
        """The request's result, and the error that failed it (None when it was decided)."""
        correlation_id = item.request.effective_correlation_id
        attempts = 1  # the batch transaction was this request's first attempt
        progress = _Progress()

        def on_retry(state: RetryCallState) -> None:
            failure = state.outcome.exception() if state.outcome else None
            log.warning(
                "Retry attempt",
                attempt=attempts + state.attempt_number + 1,
                correlationId=correlation_id,
                error=describe(failure) if failure else None,
            )

        retrying = request_retrying(self._settings, attempts_made=attempts)
        retrying.before_sleep = on_retry
        made = attempts
        try:
            async for try_ in retrying:
                with try_:
                    made += 1
                    progress = _Progress()
                    decided = await self._transaction(
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

    async def _transaction(
        self,
        items: list[Authenticated],
        claims: Sequence[repo.PartitionClaim],
        *,
        attempts: int,
        progress: _Progress,
    ) -> list[Result]:
        settings = self._settings
        requests = [item.request for item in items]
        # lock_timeout and statement_timeout are set on the pool's connections (app.py).
        async with self._pool.acquire() as conn, conn.transaction():
            standing = await repo.lock_standing(conn, claims)
            if not standing.holds_claim:
                raise PartitionLost(", ".join(f"{c.topic}:{c.partition}" for c in claims))
            if standing.paused:
                raise PublishingPaused
            stores = await repo.lock_stores(conn, [r.store_id for r in requests])
            priors = await repo.prior_outcomes(conn, [r.event_id for r in requests])
            users = await repo.existing_users(conn, [r.user_id for r in requests])
            progress.reading_gating = True
            gating = await repo.gating_state(
                conn, [r.user_id for r in requests], settings.publish_required_steps
            )
            progress.reading_gating = False
            now = datetime.now(UTC)
            snapshot = Facts(users, stores, gating, settings.publish_required_steps, priors)
            decisions = decide_batch(requests, snapshot, now=now, base_url=settings.store_base_url)
            results = self._results.of_decisions(items, decisions, attempts, now)
            decided = [
                Decided(
                    item.request,
                    decision,
                    result.outcome,
                    result.outcome_json,
                    item.record.partition,
                    item.record.offset,
                )
                for item, decision, result in zip(items, decisions, results, strict=True)
                if isinstance(decision, Verdict)
            ]
            await repo.write_effects(conn, effects_of(decided, gating.active_versions))
        return results


def _in_order(count: int, refused: dict[int, Result], decided: list[Result]) -> list[Result]:
    """A batch's results in record order: the refused at their positions, the decided in
    the order of the rest."""
    rest = iter(decided)
    return [refused[i] if i in refused else next(rest) for i in range(count)]
