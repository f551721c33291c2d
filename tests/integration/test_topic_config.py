"""The contract's topics keep what they hold: `store-publish migrate` gives them their own
retention, min.insync.replicas and cleanup policy, sets them again on topics that exist (and
says what it changed), refuses a partition count it would have to change, and
`store-publish status` warns before a waiting request nears the requests topic's retention.
Against the real broker; the commands run as child processes."""

from __future__ import annotations

import json
import time

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from ops.errors import ExitCode
from ops.oncall.retention import WARN_SHARE, retention_warnings
from ops.runtime.errors import PartitionCountMismatch
from ops.runtime.topics import contract_topics, reconcile_topics
from schemas.settings import Settings
from tests.fixtures.settings import MakeSettings
from tests.helpers.cli import store_publish
from tests.helpers.support import encode, producer_for, request_body

HOUR_MS = 3600 * 1000
MANAGED = ("retention.ms", "min.insync.replicas", "cleanup.policy")


async def configs_of(settings: Settings, names: list[str]) -> dict[str, dict[str, str]]:
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())
    await admin.start()
    try:
        resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        responses = await admin.describe_configs(resources)
    finally:
        await admin.close()
    return {
        name: {entry[0]: entry[1] for entry in entries}
        for response in responses
        for _code, _message, _type, name, entries in response.resources
    }


async def create_bare(settings: Settings, names: list[str], partitions: int) -> None:
    """Topics as a broker's auto-creation or an older migrate left them: no config of theirs."""
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1) for name in names])
    finally:
        await admin.close()


async def test_migrate_creates_the_topics_with_their_own_retention_and_keeps_dead_letters(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings()
    ran = store_publish(settings, "migrate", LOG_LEVEL="INFO")
    assert ran.code == 0, ran.err
    print(ran.out)
    assert "topics: 4 created" in ran.out
    found = await configs_of(settings, contract_topics(settings))
    assert found[settings.topic_dlq]["retention.ms"] == "-1"
    assert found[settings.topic_requests]["retention.ms"] == str(7 * 24 * HOUR_MS)
    assert found[settings.topic_outcomes]["retention.ms"] == str(7 * 24 * HOUR_MS)
    assert found[settings.topic_alerts]["retention.ms"] == str(30 * 24 * HOUR_MS)
    for name in contract_topics(settings):
        assert found[name]["cleanup.policy"] == "delete"
        assert found[name]["min.insync.replicas"] == "1"
    again = store_publish(settings, "migrate", LOG_LEVEL="INFO")
    assert again.code == 0, again.err
    assert "topics: 0 created" in again.out
    assert "changed" not in again.out


async def test_migrate_reconciles_existing_topics_and_says_what_it_changed(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings(topic_requests_retention_ms=14 * 24 * HOUR_MS)
    await create_bare(settings, contract_topics(settings), settings.topic_partitions)
    # A value someone set on purpose, that migrate does not manage, must survive it.
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())
    await admin.start()
    try:
        own = ConfigResource(
            ConfigResourceType.TOPIC, settings.topic_dlq, {"max.message.bytes": "2000000"}
        )
        await admin.alter_configs([own])
    finally:
        await admin.close()
    ran = store_publish(settings, "migrate", LOG_LEVEL="INFO")
    assert ran.code == 0, ran.err
    print(ran.out)
    changed = [line for line in ran.out.splitlines() if line.startswith("topics: changed")]
    assert f"topics: changed {settings.topic_dlq}: retention.ms 604800000 -> -1" in changed
    assert (
        f"topics: changed {settings.topic_requests}: retention.ms 604800000 -> 1209600000"
        in changed
    )
    found = await configs_of(settings, contract_topics(settings))
    assert found[settings.topic_dlq]["retention.ms"] == "-1"
    assert found[settings.topic_dlq]["max.message.bytes"] == "2000000"
    assert found[settings.topic_requests]["retention.ms"] == str(14 * 24 * HOUR_MS)
    report = await reconcile_topics(settings)
    assert (report.created, report.changed) == ([], [])


async def test_migrate_refuses_a_partition_count_other_than_the_configured_one(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings(topic_partitions=3)
    await create_bare(settings, [settings.topic_requests], 2)
    ran = store_publish(settings, "migrate", LOG_LEVEL="INFO")
    assert ran.code == ExitCode.BAD_ARGUMENTS, (ran.out, ran.err)
    assert "Traceback" not in ran.err
    assert ran.err.splitlines() == [
        f"error: topic '{settings.topic_requests}' has 2 partitions but TOPIC_PARTITIONS is 3: "
        "set TOPIC_PARTITIONS=2 (migrate never changes a partition count: it moves stores to "
        "other partitions)"
    ]
    with pytest.raises(PartitionCountMismatch):
        await reconcile_topics(settings)
    # Refused before anything was touched: the other three were not created.
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
    finally:
        await admin.close()
    assert settings.topic_outcomes not in existing
    assert settings.topic_dlq not in existing


async def test_status_warns_when_the_oldest_waiting_request_nears_the_retention(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings(topic_requests_retention_ms=HOUR_MS, topic_partitions=2)
    assert store_publish(settings, "migrate", LOG_LEVEL="INFO").code == 0
    now_ms = int(time.time() * 1000)
    async with producer_for(settings) as producer:
        # Partition 0: waiting for 40 minutes of the hour; partition 1: just arrived.
        for partition, age_ms in ((0, 40 * 60 * 1000), (1, 0)):
            await producer.send_and_wait(
                settings.topic_requests,
                encode(request_body()),
                partition=partition,
                timestamp_ms=now_ms - age_ms,
            )
    ran = store_publish(settings, "status", "--json", LOG_LEVEL="INFO")
    assert ran.code == 0, ran.err
    warnings = json.loads(ran.out)["retention_warnings"]
    assert [w["partition"] for w in warnings] == [0]
    assert 39 * 60 < warnings[0]["waited_s"] < 45 * 60
    assert warnings[0]["retention_ms"] == HOUR_MS
    text = store_publish(settings, "status", LOG_LEVEL="INFO")
    print(text.out)
    assert text.code == 0, text.err
    assert "partition 0: the oldest waiting request is 40" in " ".join(text.out.split())


async def test_status_is_quiet_about_retention_while_nothing_waits_long(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings()
    assert store_publish(settings, "migrate", LOG_LEVEL="INFO").code == 0
    async with producer_for(settings) as producer:
        await producer.send_and_wait(settings.topic_requests, encode(request_body()))
    ran = store_publish(settings, "status", "--json", LOG_LEVEL="INFO")
    assert ran.code == 0, ran.err
    assert json.loads(ran.out)["retention_warnings"] == []


def test_retention_warnings_start_at_the_share_and_never_for_kept_indefinitely() -> None:
    retention = 1000 * 1000
    edge = int(retention * WARN_SHARE)
    found = retention_warnings({0: 0, 1: 1}, retention, now_ms=edge)
    assert [w.partition for w in found] == [0]
    assert retention_warnings({0: 0}, -1, now_ms=10**12) == []
