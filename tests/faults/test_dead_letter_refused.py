"""A dead letter the broker refuses: the offset stays uncommitted and the record is tried again."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from prometheus_client import CollectorRegistry

from schemas.events import Reason
from schemas.settings import Settings
from tests.fixtures.settings import MakeSettingsWithTopics
from tests.helpers.support import (
    encode,
    holds_for,
    metric_reaches,
    read_outcomes,
    read_topic,
    request_body,
    running_consumer,
    send_requests,
)
from tests.helpers.workload import committed_total, wait_until_committed


async def _set_max_message_bytes(settings: Settings, value: int) -> None:
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())
    await admin.start()
    try:
        await admin.alter_configs(
            [
                ConfigResource(
                    ConfigResourceType.TOPIC,
                    settings.topic_dlq,
                    configs={"max.message.bytes": str(value)},
                )
            ]
        )
    finally:
        await admin.close()


async def test_a_refused_dead_letter_keeps_its_offset_and_is_sent_once_it_can_be(
    make_settings_with_topics: MakeSettingsWithTopics, database_url: str
) -> None:
    settings = await make_settings_with_topics(topic_partitions=1)
    # Smaller than any dead letter, yet larger than a transaction marker: the broker must
    # still be able to write the abort.
    await _set_max_message_bytes(settings, 150)
    values = [encode(request_body(user_id=uuid.uuid4(), store_id=uuid.uuid4())) for _ in range(3)]
    await send_requests(settings, values, key=b"one")
    registry = CollectorRegistry()
    async with running_consumer(settings, registry):
        # Every record read twice over: a transaction was refused and its batch handed back.
        polled = "store_publish_batch_size_records_sum"
        await metric_reaches(registry, polled, 2 * len(values), at_least=True)

        async def uncommitted() -> bool:
            return await committed_total(settings) == 0

        # From there, 4 s of refusals: no offset committed, no outcome visible.
        _, during = await asyncio.gather(
            holds_for(4, uncommitted, "offset committed past a refused record"),
            read_topic(settings, settings.topic_outcomes, expect=1, wait_s=4),
        )
        assert during == []
        await _set_max_message_bytes(settings, 1024 * 1024)
        outcomes = await read_outcomes(settings, expect=3)
        dead = await read_topic(settings, settings.topic_dlq, expect=3)
        await wait_until_committed(settings, 3, wait_s=5)
    assert [o.reason for o in outcomes] == [Reason.USER_NOT_FOUND] * 3
    assert sorted(r.value for r in dead) == sorted(values)
    assert await committed_total(settings) == 3
