"""A stream worker's first phase: the outcomes of the partitions it holds, folded into partials.

Per fetch of one partition's outcome records: parse, fold into that partition's slots
(`streams.rates.fold`), write each changed partial to the worker's table (its changelog makes
it durable). Several times per evaluation interval: publish to the evaluator the latest of
each partial changed since the last time. Per tick: drop the partials that have left the
window, and after a rebalance publish every live partial of the partitions now held, so the
evaluator has them even when the worker that held them before died between writing a partial
and publishing it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

import structlog
from pydantic import ValidationError

from schemas.events import OutcomeFacts
from streams.faust_app import FetchedRecord
from streams.metrics import StreamMetrics
from streams.partials import Partials
from streams.rates import (
    Clock,
    Geometry,
    Observed,
    Slot,
    fold,
    parse_partial_key,
    partial_key,
)

log = structlog.get_logger("streams.folding")

Publish = Callable[[str, bytes], None]


@dataclass(eq=False)
class Folder:
    """Folds outcomes into partials (`ingest`), sends the changed ones (`publish`), expires
    and republishes them (`tick`)."""

    geometry: Geometry
    partials: Partials
    metrics: StreamMetrics
    publish_partial: Publish
    clock: Clock
    _published_generation: int | None = field(default=None, init=False)
    # The latest bytes of each partial changed since the last `publish`: folds are many
    # (one per fetch and partition), partials sent far fewer.
    _unpublished: dict[str, bytes] = field(default_factory=dict, init=False)

    def ingest(self, partition: int, records: Sequence[FetchedRecord]) -> None:
        """Fold one partition's records of one fetch (offsets ascending)."""
        self.metrics.fetches.inc()
        observed: list[Observed] = []
        for record in records:
            try:
                outcome = OutcomeFacts.model_validate_json(record.value or b"")
            except ValidationError:
                self.metrics.invalid.inc()
                log.warning(
                    "Outcome record ignored: not a PublishOutcome this stream can count",
                    partition=partition,
                    offset=record.offset,
                )
                continue
            observed.append(Observed(partition, record.offset, outcome))
        slots = self.partials.of_partition(partition)
        changed = fold(slots, observed, self.geometry, self.clock())
        folded = 0
        for slot, value in changed.items():
            before = slots.get(slot, Slot()).counts.all
            folded += value.counts.all - before
            if value.counts.all == before:
                continue  # every record already folded in: nothing new to publish
            key, encoded = partial_key(partition, slot), value.encode()
            self.partials.put(key, encoded, value)
            self._unpublished[key] = encoded
        self.metrics.outcomes.inc(folded)
        self.metrics.skipped.inc(max(0, len(observed) - folded))

    def publish(self, held: Collection[int]) -> int:
        """Send the latest of each partial changed since the last call; returns how many.
        Those of partitions no longer held are dropped: their next owner sends them."""
        sent = 0
        for key, encoded in self._unpublished.items():
            if parse_partial_key(key)[0] in held:
                self.publish_partial(key, encoded)
                sent += 1
        self._unpublished.clear()
        return sent

    def tick(self, held: Collection[int], generation: int) -> None:
        """Expire the held partitions' old partials; republish them all after a rebalance.

        Only held partitions: the table also holds standby copies of other workers' partials,
        and deleting one would write a tombstone into a changelog this worker does not own.
        """
        self.partials.expire(self.geometry.live(self.clock()).start, held)
        if generation == self._published_generation:
            return
        self._unpublished.clear()  # all of them go now
        republished = 0
        for key in self.partials.stored():
            if parse_partial_key(key)[0] in held:
                self.publish_partial(key, self.partials.encoded(key))
                republished += 1
        self._published_generation = generation
        log.info("Partials republished after a rebalance", partials=republished, held=sorted(held))
