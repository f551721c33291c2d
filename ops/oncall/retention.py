"""How close the oldest waiting request is to being deleted unread, for `store-publish status`.

A paused partition (publishing paused, the database away) keeps its requests in the requests
topic, and the contract says nothing is lost: true only while the pause is shorter than the
topic's retention. Kafka deletes a segment once its newest record is older than
`retention.ms`, so a request may outlive it, never the reverse; the age of the first record
not yet committed by the group, against the retention the broker actually applies, is what
tells how long is left.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.structs import TopicPartition

from ops.probes import KAFKA_TIMEOUT_MS, with_kafka_deadline
from schemas.settings import Settings

# Warned about once half the retention is gone: days left, on the default of 7, to resume.
WARN_SHARE = 0.5


@dataclass(frozen=True)
class RetentionWarning:
    partition: int
    waited_s: float
    retention_ms: int

    def describe(self) -> str:
        left = max(self.retention_ms / 1000 - self.waited_s, 0.0)
        return (
            f"partition {self.partition}: the oldest waiting request is {_span(self.waited_s)} "
            f"old and the requests topic deletes after {_span(self.retention_ms / 1000)} "
            f"({_span(left)} left): resume, or raise TOPIC_REQUESTS_RETENTION_MS and run "
            "store-publish migrate"
        )


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


async def topic_retention_ms(settings: Settings, topic: str) -> int:
    """The retention.ms the broker applies to `topic` (-1: kept indefinitely)."""
    servers = settings.kafka_bootstrap_servers
    admin = AIOKafkaAdminClient(
        **settings.kafka_client_options(), request_timeout_ms=KAFKA_TIMEOUT_MS
    )
    try:
        await with_kafka_deadline(servers, admin.start())
        resource = ConfigResource(ConfigResourceType.TOPIC, topic, {"retention.ms": None})
        responses = await with_kafka_deadline(servers, admin.describe_configs([resource]))
    finally:
        await admin.close()
    for response in responses:
        for _code, _message, _type, _name, entries in response.resources:
            for entry in entries:
                if entry[0] == "retention.ms" and entry[1] is not None:
                    return int(entry[1])
    return -1


async def oldest_waiting_ms(settings: Settings, waiting: dict[int, int]) -> dict[int, int]:
    """Partition -> timestamp (ms) of its first record at or past `waiting[partition]`."""
    if not waiting:
        return {}
    servers = settings.kafka_bootstrap_servers
    consumer = AIOKafkaConsumer(
        **settings.kafka_client_options(),
        group_id=None,
        enable_auto_commit=False,
        request_timeout_ms=KAFKA_TIMEOUT_MS,
    )
    found: dict[int, int] = {}
    try:
        await with_kafka_deadline(servers, consumer.start())
        partitions = {p: TopicPartition(settings.topic_requests, p) for p in waiting}
        consumer.assign(list(partitions.values()))
        for partition, tp in partitions.items():
            consumer.seek(tp, waiting[partition])
        deadline = time.monotonic() + 5.0
        while len(found) < len(waiting) and time.monotonic() < deadline:
            remaining = [tp for p, tp in partitions.items() if p not in found]
            batches = await with_kafka_deadline(
                servers, consumer.getmany(*remaining, timeout_ms=500, max_records=1)
            )
            for tp, records in batches.items():
                if records:
                    found.setdefault(tp.partition, int(records[0].timestamp))
    finally:
        await consumer.stop()
    return found


def retention_warnings(
    oldest_ms: dict[int, int], retention_ms: int, now_ms: int
) -> list[RetentionWarning]:
    """The partitions whose oldest waiting request has used WARN_SHARE of the retention."""
    if retention_ms < 0:
        return []
    warnings = [
        RetentionWarning(partition, (now_ms - stamp) / 1000, retention_ms)
        for partition, stamp in sorted(oldest_ms.items())
        if now_ms - stamp >= retention_ms * WARN_SHARE
    ]
    return warnings


async def waiting_warnings(settings: Settings, waiting: dict[int, int]) -> list[RetentionWarning]:
    """`waiting`: partition -> first offset not yet committed, for partitions that lag."""
    if not waiting:
        return []
    retention = await topic_retention_ms(settings, settings.topic_requests)
    oldest = await oldest_waiting_ms(settings, waiting)
    return retention_warnings(oldest, retention, int(time.time() * 1000))
