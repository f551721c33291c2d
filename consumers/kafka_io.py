"""Kafka at the consumer's edge: the requests reader, and one transactional producer per
consumer process.

A poll's outcomes, dead letters and consumer offsets, for every partition in it, are
committed in one Kafka transaction, so `read_committed` readers see each batch's output
exactly once. A broker spends milliseconds of CPU on each transaction (markers,
`__transaction_state`, the offset commit), so one per poll rather than one per partition.

aiokafka's `send_offsets_to_transaction` has no KIP-447 fencing by group metadata. Fencing
goes through the database instead: each partition's claim records the transactional id of
the process that holds it, and whoever claims the partition next initialises a producer
with that id (`fence`), which aborts its open transaction and fences it for good.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.producer import sender as aiokafka_sender
from aiokafka.structs import TopicPartition
from murmurhash2 import murmurhash2

from consumers.outcomes import OutboundRecord
from ops.runtime.roles import transactional_id_prefix
from schemas.settings import Settings

# After a commit, the broker answers the next transaction's AddPartitionsToTxn with
# CONCURRENT_TRANSACTIONS until it has written the previous markers (KAFKA-5477), and
# aiokafka waits a fixed 20 ms before asking again: with one transaction per poll that is
# 20 ms of every cycle spent idle. The markers take a few milliseconds here, so ask again
# sooner; the cost is at most a few more cheap requests per transaction. aiokafka reads the
# constant at each retry (tests/unit/test_kafka_backoff.py fails if it moves or is renamed).
# Set when a transactional writer starts, not when this module is imported: importing a
# module changes nothing of a library's.
CONCURRENT_TRANSACTIONS_BACKOFF_S = 0.003


def shorten_concurrent_transactions_backoff() -> None:
    """aiokafka's retry wait after CONCURRENT_TRANSACTIONS, for every producer of the process
    (a module constant of aiokafka's: there is no per-producer setting)."""
    aiokafka_sender.BACKOFF_OVERRIDE = CONCURRENT_TRANSACTIONS_BACKOFF_S


# aiokafka's own default, not more: `getmany` drains one partition's fetched records before
# it takes the next, so a poll draws on several partitions only when one partition's fetch
# holds less than a poll. At 4 MiB it held more (5,000 requests of 470 bytes), and most
# polls decided a single partition, their database round trips one after the other. 1 MiB
# is about 2,200 such requests a partition.
_PARTITION_FETCH_BYTES = 1024 * 1024

# What a fetch answers at once, before the commit interval is out: a backlog's worth, so
# records read back to back when they queue; a steady rate answers after the interval.
_PACED_FETCH_MIN_BYTES = 256 * 1024


def requests_reader(settings: Settings) -> AIOKafkaConsumer:
    """The consumer group's reader of requests, not started or subscribed: committed records
    only, offsets committed in the producer's transactions, never by the reader."""
    return AIOKafkaConsumer(
        **settings.kafka_client_options(),
        group_id=settings.consumer_group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_partition_fetch_bytes=_PARTITION_FETCH_BYTES,
        **_fetch_pacing(settings),
    )


def _fetch_pacing(settings: Settings) -> dict[str, int]:
    """The commit cadence's other half (docs/bench.md, "The commit cadence"). aiokafka does
    not fetch a partition while its records wait in the buffer, so with the broker answering
    a fetch at its first record, what arrived later in the interval waited for the poll after
    next: a request waited one and a half intervals at p50. Held by the broker until the
    interval is out, a fetch brings the whole interval's records to the next poll."""
    interval = settings.consumer_commit_interval_ms
    if interval == 0:
        return {}  # no cadence: aiokafka's defaults, an answer at the first record
    return {"fetch_max_wait_ms": interval, "fetch_min_bytes": _PACED_FETCH_MIN_BYTES}


def new_transactional_id(settings: Settings, owner: str) -> str:
    """Unique to one consumer process (`owner` is its host and pid, and a pid is reused):
    a process never shares its id, so fencing it stops that process alone."""
    return f"{transactional_id_prefix(settings)}{owner}:{uuid.uuid4().hex[:8]}"


def _producer(settings: Settings, transactional_id: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        **settings.kafka_client_options(),
        transactional_id=transactional_id,
        enable_idempotence=True,
        acks="all",
        # No linger: the writer hands over whole batches (`commit`), and a batch lingers its
        # full linger time before it is sent, even when nothing more will join it, which
        # added 5 ms to every transaction (docs/bench.md, "The Kafka transaction").
        linger_ms=0,
        max_batch_size=256 * 1024,
        request_timeout_ms=30_000,
        # Longer than the consumer's commit timeout: a transaction it abandons is aborted by
        # the next initialisation of the same id, not left to expire.
        transaction_timeout_ms=max(60_000, 2 * settings.kafka_commit_timeout_ms),
    )


async def fence(settings: Settings, transactional_id: str) -> None:
    """Initialise `transactional_id` and let go: its open transaction is aborted (or its
    commit completed) and any producer still using it is fenced."""
    producer = _producer(settings, transactional_id)
    await producer.start()
    await producer.stop()


@dataclass(frozen=True)
class Placed:
    """Records bound for one topic partition, in order."""

    tp: TopicPartition
    records: list[OutboundRecord]


# The seed of Kafka's murmur2 (`Utils.murmur2` in the Java client).
_KAFKA_MURMUR2_SEED = 0x9747B28C


def partition_for(key: bytes | None, partitions: Sequence[int]) -> int:
    """Where a keyed send puts `key` among `partitions` (sorted): Kafka's default
    partitioner, murmur2 of the key as the Java client and aiokafka's `DefaultPartitioner`
    compute it, so a key's records share a partition whoever writes them. aiokafka's
    murmur2 is pure Python (9 µs a key, the consumer's largest single cost per record);
    this one is compiled. An unkeyed record goes anywhere, as with aiokafka."""
    if key is None:
        return random.choice(partitions)
    return partitions[(murmurhash2(key, _KAFKA_MURMUR2_SEED) & 0x7FFFFFFF) % len(partitions)]


def place(
    records: Sequence[OutboundRecord], partitions: Mapping[str, Sequence[int]]
) -> list[Placed]:
    """The records grouped by the partition each goes to (`partition_for`), in order."""
    placed: dict[TopicPartition, list[OutboundRecord]] = {}
    for record in records:
        partition = partition_for(record.key, partitions[record.topic])
        placed.setdefault(TopicPartition(record.topic, partition), []).append(record)
    return [Placed(tp, batch) for tp, batch in placed.items()]


class TransactionalWriter:
    """Writes each poll's records and offsets in one transaction."""

    def __init__(self, settings: Settings, transactional_id: str) -> None:
        self._settings = settings
        self.transactional_id = transactional_id
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        shorten_concurrent_transactions_backoff()
        producer = _producer(self._settings, self.transactional_id)
        await producer.start()
        self._producer = producer

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def commit(
        self, records: Sequence[OutboundRecord], offsets: Mapping[TopicPartition, int]
    ) -> None:
        """Send the records and commit `offsets` for the group, all or nothing."""
        producer = self._producer
        if producer is None:
            raise RuntimeError("the transactional writer is not started")
        topics = {record.topic for record in records}
        partitions = {topic: sorted(await producer.partitions_for(topic)) for topic in topics}
        async with producer.transaction():
            acks = []
            # Whole record batches rather than a send per record: the per-record path of
            # aiokafka (partitioner, futures, accumulator) costs more than the encoding.
            for placed in place(records, partitions):
                batch = producer.create_batch()
                for record in placed.records:
                    while (
                        batch.append(
                            key=record.key,
                            value=record.value,
                            timestamp=None,
                            headers=list(record.headers),
                        )
                        is None
                    ):
                        acks.append(
                            await producer.send_batch(
                                batch, placed.tp.topic, partition=placed.tp.partition
                            )
                        )
                        batch = producer.create_batch()
                acks.append(
                    await producer.send_batch(batch, placed.tp.topic, partition=placed.tp.partition)
                )
            # Every batch acknowledged before the offsets join the transaction: a refused
            # dead letter aborts the poll's output rather than being dropped.
            for failure in await asyncio.gather(*acks, return_exceptions=True):
                if isinstance(failure, BaseException):
                    raise failure
            await producer.send_offsets_to_transaction(dict(offsets), self._settings.consumer_group)
