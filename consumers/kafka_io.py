"""Kafka at the consumer's edge: one transactional producer per input partition.

Outcomes, dead letters and the consumer offset of a partition's batch are committed in one
Kafka transaction, so `read_committed` readers see each batch's output exactly once.
aiokafka's `send_offsets_to_transaction` has no KIP-447 fencing by group metadata, so the
transactional id is per input partition: whoever is assigned the partition next initialises
the same id, which bumps the epoch and fences a zombie that still thinks it owns it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.structs import TopicPartition

from consumers.outcomes import OutboundRecord
from schemas.settings import Settings


def transactional_id(settings: Settings, tp: TopicPartition) -> str:
    return f"{settings.consumer_group}:{tp.topic}:{tp.partition}"


class PartitionWriter:
    """Writes one input partition's batches transactionally, with their offsets."""

    def __init__(self, settings: Settings, tp: TopicPartition) -> None:
        self._settings = settings
        self.tp = tp
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        producer = AIOKafkaProducer(
            **self._settings.kafka_client_options(),
            transactional_id=transactional_id(self._settings, self.tp),
            enable_idempotence=True,
            acks="all",
            linger_ms=5,
            max_batch_size=256 * 1024,
            request_timeout_ms=30_000,
            # Longer than the consumer's commit timeout: a transaction it abandons is aborted
            # by the next producer's initialisation, not left to expire.
            transaction_timeout_ms=max(60_000, 2 * self._settings.kafka_commit_timeout_ms),
        )
        await producer.start()
        self._producer = producer

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def commit(self, records: Sequence[OutboundRecord], next_offset: int) -> None:
        """Send the records and commit `next_offset` for the partition, all or nothing."""
        producer = self._producer
        if producer is None:
            raise RuntimeError(f"writer for {self.tp} is not started")
        async with producer.transaction():
            acks = [
                await producer.send(
                    record.topic, value=record.value, key=record.key, headers=list(record.headers)
                )
                for record in records
            ]
            # Every send acknowledged before the offsets join the transaction: a refused
            # dead letter aborts the batch rather than being dropped.
            for failure in await asyncio.gather(*acks, return_exceptions=True):
                if isinstance(failure, BaseException):
                    raise failure
            await producer.send_offsets_to_transaction(
                {self.tp: next_offset}, self._settings.consumer_group
            )
