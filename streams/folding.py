"""A stream worker's first phase: the outcomes of the partitions it holds, folded into partials.

Per fetch of one partition's outcome records: parse, fold into that partition's slots
(`streams.rates.fold`), write each changed partial to the worker's table (its changelog makes
it durable) and publish it to the evaluator. Per tick: drop the partials that have left the
window, and after a rebalance publish every live partial of the partitions now held, so the
evaluator has them even when the worker that held them before died between writing a partial
and publishing it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, MutableMapping, Sequence
from datetime import datetime

import structlog
from pydantic import ValidationError

from schemas.events import OutcomeFacts
from schemas.settings import Settings
from streams.faust_app import FetchedRecord
from streams.metrics import StreamMetrics
from streams.rates import Geometry, Observed, Slot, fold, parse_partial_key, partial_key

log = structlog.get_logger("streams.folding")

Clock = Callable[[], datetime]
Publish = Callable[[str, bytes], None]


class PartitionSlots(Mapping[int, Slot]):
    """One source partition's partials in the table, by slot, decoded on access."""

    def __init__(self, table: Mapping[str, bytes], partition: int) -> None:
        self._table = table
        self._partition = partition

    def __getitem__(self, slot: int) -> Slot:
        return Slot.decode(self._table[partial_key(self._partition, slot)])

    def __iter__(self) -> Iterator[int]:
        for key in list(self._table):
            partition, slot = parse_partial_key(key)
            if partition == self._partition:
                yield slot

    def __len__(self) -> int:
        return sum(1 for _ in self)


class Folder:
    """Folds outcomes into partials (`ingest`), expires and republishes them (`tick`)."""

    def __init__(
        self,
        settings: Settings,
        partials: MutableMapping[str, bytes],
        metrics: StreamMetrics,
        publish: Publish,
        clock: Clock,
    ) -> None:
        self._geometry = Geometry(settings.alert_window_seconds)
        self._partials = partials
        self._metrics = metrics
        self._publish = publish
        self._clock = clock
        self._published_generation: int | None = None

    def ingest(self, partition: int, records: Sequence[FetchedRecord]) -> None:
        """Fold one partition's records of one fetch (offsets ascending)."""
        observed: list[Observed] = []
        for record in records:
            try:
                outcome = OutcomeFacts.model_validate_json(record.value or b"")
            except ValidationError:
                self._metrics.invalid.inc()
                log.warning(
                    "Outcome record ignored: not a PublishOutcome this stream can count",
                    partition=partition,
                    offset=record.offset,
                )
                continue
            observed.append(Observed(partition, record.offset, outcome))
        slots = PartitionSlots(self._partials, partition)
        changed = fold(slots, observed, self._geometry, self._clock())
        folded = 0
        for slot, value in changed.items():
            before = slots.get(slot, Slot()).counts.all
            folded += value.counts.all - before
            if value.counts.all == before:
                continue  # every record already folded in: nothing new to publish
            key, encoded = partial_key(partition, slot), value.encode()
            self._partials[key] = encoded
            self._publish(key, encoded)
        self._metrics.outcomes.inc(folded)
        self._metrics.skipped.inc(max(0, len(observed) - folded))

    def tick(self, held: Collection[int], generation: int) -> None:
        """Expire the held partitions' old partials; republish them all after a rebalance.

        Only held partitions: the table also holds standby copies of other workers' partials,
        and deleting one would write a tombstone into a changelog this worker does not own.
        """
        first_live = self._geometry.live(self._clock()).start
        for key in list(self._partials):
            partition, slot = parse_partial_key(key)
            if partition in held and slot < first_live:
                del self._partials[key]
        if generation == self._published_generation:
            return
        republished = 0
        for key in list(self._partials):
            if parse_partial_key(key)[0] in held:
                self._publish(key, self._partials[key])
                republished += 1
        self._published_generation = generation
        log.info("Partials republished after a rebalance", partials=republished, held=sorted(held))
