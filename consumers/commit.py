"""A poll's batches decided side by side, then committed in one Kafka transaction; whatever
cannot be decided or committed is handed back (sought back to its first offset), to be read
and decided again, idempotently."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence, Set
from datetime import UTC, datetime
from typing import Protocol

import structlog
from aiokafka import ConsumerRecord
from aiokafka.errors import ProducerFenced
from aiokafka.structs import TopicPartition

from consumers.errors import BatchHandedBack, PartitionLost
from consumers.outcomes import InboundRecord, OutboundRecord
from consumers.repository import PartitionClaim
from consumers.results import Result
from ops.runtime.faults import describe
from ops.runtime.waiting import within
from schemas.settings import Settings

log = structlog.get_logger("consumers.commit")

Batches = Mapping[TopicPartition, list[ConsumerRecord[bytes, bytes]]]


class Seekable(Protocol):
    def assignment(self) -> Set[TopicPartition]: ...
    def seek(self, partition: TopicPartition, offset: int) -> None: ...


class Decider(Protocol):
    async def handle(
        self, records: Sequence[InboundRecord], claim: PartitionClaim
    ) -> list[Result]: ...


class Writer(Protocol):
    async def commit(
        self, records: Sequence[OutboundRecord], offsets: Mapping[TopicPartition, int]
    ) -> None: ...


class Claims(Protocol):
    """Which partitions this process may write for, and the writer it commits with."""

    def claim_for(self, tp: TopicPartition, first_offset: int) -> PartitionClaim | None: ...
    def drop(self, tp: TopicPartition) -> None: ...
    def committed(self, tp: TopicPartition, next_offset: int) -> None: ...
    async def writer(self) -> Writer: ...
    async def replace_writer(self, wait_s: float = ...) -> None: ...


def inbound(record: ConsumerRecord[bytes, bytes], received_at: datetime) -> InboundRecord:
    return InboundRecord(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value,
        headers=tuple((name, bytes(value)) for name, value in record.headers),
        timestamp_ms=record.timestamp,
        received_at=received_at,
    )


def outbound(topic_outcomes: str, results: Sequence[Result]) -> list[OutboundRecord]:
    """Each result's outcome, keyed by its store, and its dead letter when it has one."""
    records: list[OutboundRecord] = []
    for result in results:
        key = (
            str(result.outcome.store_id).encode() if result.outcome.store_id else result.record.key
        )
        records.append(OutboundRecord(topic_outcomes, key, result.outcome_json.encode("utf-8")))
        if result.dead_letter is not None:
            records.append(result.dead_letter)
    return records


class Committer:
    def __init__(
        self, settings: Settings, consumer: Seekable, claims: Claims, decider: Decider
    ) -> None:
        self._settings = settings
        self._consumer = consumer
        self._claims = claims
        self._decider = decider

    async def decide_and_commit(
        self, batches: Batches
    ) -> tuple[dict[TopicPartition, list[Result]], list[BaseException]]:
        """Each partition's batch transaction, side by side, then one Kafka transaction for
        every batch decided. Returns the committed results by partition, and the errors of
        the batches handed back."""
        try:
            # Before the batch transactions, never after: see `Ownership.writer`.
            writer = await self._claims.writer()
        except Exception as error:
            self.hand_back(batches)
            log.warning("Kafka writer not started, poll handed back", error=describe(error))
            return {}, [BatchHandedBack(str(error))]
        decisions = await asyncio.gather(
            *(self._decide_partition(tp, records) for tp, records in batches.items()),
            return_exceptions=True,
        )
        errors = [d for d in decisions if isinstance(d, BaseException)]
        assignment = self._consumer.assignment()
        decided = {
            tp: results
            for tp, results in zip(batches, decisions, strict=True)
            # Revoked meanwhile: its next owner redoes the batch from the database's records.
            if isinstance(results, list) and tp in assignment
        }
        if not decided:
            return {}, errors
        offsets = {tp: batches[tp][-1].offset + 1 for tp in decided}
        records = [
            record
            for results in decided.values()
            for record in outbound(self._settings.topic_outcomes, results)
        ]
        try:
            # A transaction can hang when the broker goes away mid-commit: past this bound
            # the outcome is ambiguous, and a fresh producer settles it.
            await within(
                writer.commit(records, offsets), self._settings.kafka_commit_timeout_ms / 1000
            )
        except ProducerFenced:
            # A partition's next owner fenced this process's id; whatever is still ours is
            # redone idempotently, with a fresh producer, once its claim is proven again.
            log.warning(
                "Producer fenced, partition taken over",
                partitions=[tp.partition for tp in decided],
            )
            self.hand_back({tp: batches[tp] for tp in decided})
            await self._claims.replace_writer()
            return {}, errors
        except BaseException as error:
            # Cancelled (shutting down) or failed: either way the batches go back, and the
            # next poll gets a fresh producer whose initialisation completes or aborts
            # whatever this one left open.
            self.hand_back({tp: batches[tp] for tp in decided})
            if not isinstance(error, Exception):
                raise
            log.warning(
                "Kafka transaction failed, batch handed back",
                partitions=[tp.partition for tp in decided],
                offsets=[batches[tp][0].offset for tp in decided],
                error=describe(error),
            )
            await self._claims.replace_writer()
            return {}, [*errors, BatchHandedBack(str(error))]
        for tp in decided:
            self._claims.committed(tp, offsets[tp])
        return decided, errors

    async def _decide_partition(
        self, tp: TopicPartition, records: list[ConsumerRecord[bytes, bytes]]
    ) -> list[Result] | None:
        """The batch's results, decided and written in its database transaction; None when
        the batch is not this consumer's to decide."""
        claim = self._claims.claim_for(tp, records[0].offset)
        if claim is None:
            return None
        now = datetime.now(UTC)
        try:
            return await self._decider.handle([inbound(r, now) for r in records], claim)
        except PartitionLost:
            log.warning("Partition claimed by another consumer", partition=tp.partition)
            self._claims.drop(tp)
            return None
        except BaseException:
            self._consumer.seek(tp, records[0].offset)
            raise

    def hand_back(self, batches: Batches) -> None:
        for tp, records in batches.items():
            self._consumer.seek(tp, records[0].offset)
