"""Reading a topic with a plain consumer: no group, nothing committed, read_committed.

`read_snapshot`: every partition is assigned, read from its beginning (or the last `tail`
records) up to the end offsets taken when reading starts, then the consumer stops.
`following` and `read_until`: from the first record on, for records still to come (the demo
and the tests wait for outcomes this way). read_committed, so aborted transactions of the
publish consumer never show up as outcomes or dead letters.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from ops.errors import ExitCode, OperatorError, missing_topic
from ops.probes import KAFKA_TIMEOUT_MS, with_kafka_deadline
from schemas.settings import Settings

# Reading stops with an error when no partition has advanced for this long.
STALL_SECONDS = 10.0


@dataclass(frozen=True)
class RawRecord:
    """One Kafka record, copied out of aiokafka's types."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


def _raw(record: object) -> RawRecord:
    headers = getattr(record, "headers", None) or ()
    return RawRecord(
        topic=str(getattr(record, "topic")),  # noqa: B009
        partition=int(getattr(record, "partition")),  # noqa: B009
        offset=int(getattr(record, "offset")),  # noqa: B009
        timestamp_ms=int(getattr(record, "timestamp", 0) or 0),
        key=getattr(record, "key", None),
        value=getattr(record, "value", None),
        headers=tuple((str(name), bytes(value or b"")) for name, value in headers),
    )


async def _partitions(settings: Settings, topic: str, variable: str) -> list[int]:
    """The partitions of `topic`, asked without creating it (the broker may auto-create)."""
    servers = settings.kafka_bootstrap_servers
    admin = AIOKafkaAdminClient(
        **settings.kafka_client_options(), request_timeout_ms=KAFKA_TIMEOUT_MS
    )
    try:
        await with_kafka_deadline(servers, admin.start())
        # Every topic: naming one in a metadata request may create it.
        described = await with_kafka_deadline(servers, admin.describe_topics())
    finally:
        await admin.close()
    for found in described:
        if found["topic"] == topic and found["error_code"] == 0:
            return sorted(int(partition["partition"]) for partition in found["partitions"])
    raise missing_topic(topic, variable)


@asynccontextmanager
async def _assigned(
    settings: Settings, topic: str, variable: str
) -> AsyncIterator[tuple[AIOKafkaConsumer, list[TopicPartition]]]:
    assignment = [
        TopicPartition(topic, partition)
        for partition in await _partitions(settings, topic, variable)
    ]
    consumer = AIOKafkaConsumer(
        **settings.kafka_client_options(),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        request_timeout_ms=KAFKA_TIMEOUT_MS,
    )
    try:
        await with_kafka_deadline(settings.kafka_bootstrap_servers, consumer.start())
        consumer.assign(assignment)
        yield consumer, assignment
    finally:
        await consumer.stop()


async def read_snapshot(
    settings: Settings, topic: str, variable: str, *, tail: int | None = None
) -> list[RawRecord]:
    """Every committed record of `topic` up to now (or the last `tail` of each partition)."""
    servers = settings.kafka_bootstrap_servers
    async with _assigned(settings, topic, variable) as (consumer, assignment):
        begin = await with_kafka_deadline(servers, consumer.beginning_offsets(assignment))
        end = await with_kafka_deadline(servers, consumer.end_offsets(assignment))
        remaining: set[TopicPartition] = set()
        for tp in assignment:
            start = begin[tp] if tail is None else max(begin[tp], end[tp] - tail)
            consumer.seek(tp, start)
            if start < end[tp]:
                remaining.add(tp)
        found: list[RawRecord] = []
        loop = asyncio.get_running_loop()
        last_progress = loop.time()
        while remaining:
            batches = await with_kafka_deadline(
                servers, consumer.getmany(*remaining, timeout_ms=500)
            )
            for tp, records in batches.items():
                found.extend(_raw(r) for r in records if r.offset < end[tp])
            if batches:
                last_progress = loop.time()
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
            if remaining and loop.time() - last_progress > STALL_SECONDS:
                raise OperatorError(
                    f"Kafka stopped answering while reading {topic!r} at {servers}",
                    ExitCode.UNREACHABLE,
                )
        return found


@asynccontextmanager
async def following(
    settings: Settings, topic: str, **options: Any
) -> AsyncIterator[AIOKafkaConsumer]:
    """A reader of `topic` from its first record on; `options` go to the consumer."""
    consumer = AIOKafkaConsumer(
        topic,
        **settings.kafka_client_options(),
        group_id=None,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **options,
    )
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


async def read_until(
    settings: Settings, topic: str, *, expect: int, wait_s: float, settle_s: float = 0.0
) -> list[RawRecord]:
    """Records of `topic` from its first, until `expect` of them or `wait_s` seconds; then
    `settle_s` longer, to catch records that should not be there."""
    found: list[RawRecord] = []
    async with following(settings, topic) as consumer:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while len(found) < expect and loop.time() < deadline:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                found.extend(_raw(r) for r in records)
        settled = loop.time() + settle_s
        while loop.time() < settled:
            timeout_ms = max(int((settled - loop.time()) * 1000), 1)
            for records in (await consumer.getmany(timeout_ms=timeout_ms)).values():
                found.extend(_raw(r) for r in records)
    return found


async def read_at(settings: Settings, topic: str, partition: int, offset: int) -> RawRecord:
    """The record at `partition:offset`, or an OperatorError (NOT_FOUND) saying why not."""
    servers = settings.kafka_bootstrap_servers
    async with _assigned(settings, topic, "TOPIC_DLQ") as (consumer, assignment):
        tp = TopicPartition(topic, partition)
        if tp not in assignment:
            raise OperatorError(
                f"{topic!r} has no partition {partition} (partitions: 0 to {len(assignment) - 1})",
                ExitCode.NOT_FOUND,
            )
        begin = (await with_kafka_deadline(servers, consumer.beginning_offsets([tp])))[tp]
        end = (await with_kafka_deadline(servers, consumer.end_offsets([tp])))[tp]
        if not begin <= offset < end:
            raise OperatorError(
                f"no record at {partition}:{offset} in {topic!r} "
                f"(partition {partition} holds offsets {begin} to {end - 1})",
                ExitCode.NOT_FOUND,
            )
        # Offsets taken by transaction markers or aborted records hold no dead letter.
        not_found = OperatorError(
            f"no record at {partition}:{offset} in {topic!r} "
            "(the offset of a transaction marker or of an aborted write)",
            ExitCode.NOT_FOUND,
        )
        consumer.seek(tp, offset)
        loop = asyncio.get_running_loop()
        started = loop.time()
        while await consumer.position(tp) < end:
            batches = await with_kafka_deadline(
                servers, consumer.getmany(tp, timeout_ms=500, max_records=1)
            )
            for record in batches.get(tp, []):
                if record.offset != offset:
                    raise not_found
                return _raw(record)
            if loop.time() - started > STALL_SECONDS:
                raise OperatorError(
                    f"Kafka stopped answering while reading {topic!r} at {servers}",
                    ExitCode.UNREACHABLE,
                )
        raise not_found


async def require_topic(settings: Settings, topic: str, variable: str) -> None:
    """An OperatorError (NOT_SET_UP) unless `topic` exists."""
    await _partitions(settings, topic, variable)


async def partition_offsets(
    settings: Settings, topic: str, variable: str
) -> dict[int, tuple[int, int]]:
    """Per partition of `topic`: its beginning and (last stable) end offsets."""
    servers = settings.kafka_bootstrap_servers
    async with _assigned(settings, topic, variable) as (consumer, assignment):
        begin = await with_kafka_deadline(servers, consumer.beginning_offsets(assignment))
        end = await with_kafka_deadline(servers, consumer.end_offsets(assignment))
        return {tp.partition: (begin[tp], end[tp]) for tp in assignment}
