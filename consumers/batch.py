"""One partition's batch, or a poll's batches together: screen each record's bytes, decide
the rest under the retry rules (`consumers.retrying`), and give every record exactly one
result, in order.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from consumers import repository as repo
from consumers.errors import DecideSeparately, HandedBack, PartitionLost
from consumers.outcomes import InboundRecord
from consumers.results import Authenticated, Result, Results
from consumers.retrying import DecisionStore, RetryFlow
from consumers.screening import Refusal, screen
from ops.runtime.faults import describe
from schemas.settings import Settings

log = structlog.get_logger("consumers.batch")


class BatchHandler:
    def __init__(self, settings: Settings, store: DecisionStore) -> None:
        self._settings = settings
        self._flow = RetryFlow(settings, store)
        self._results = Results(settings.topic_dlq)
        self._secret = settings.signing_key()

    async def handle(
        self, records: Sequence[InboundRecord], claim: repo.PartitionClaim
    ) -> list[Result]:
        """Every record gets exactly one Result, in order. Raises a `HandedBack` (paused,
        database unavailable or at fault, partition lost) when the batch must go back to
        Kafka untouched."""
        refused, authenticated = self._screen(records)
        return _in_order(len(records), refused, await self._flow.batch(authenticated, claim))

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
                decided = await self._flow.together(items, [claim for _, claim in batches])
            except PartitionLost as error:
                raise DecideSeparately(f"partition lost: {error}") from error
            except HandedBack:
                raise
            except Exception as error:
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


def _in_order(count: int, refused: dict[int, Result], decided: list[Result]) -> list[Result]:
    """A batch's results in record order: the refused at their positions, the decided in
    the order of the rest."""
    rest = iter(decided)
    return [refused[i] if i in refused else next(rest) for i in range(count)]
