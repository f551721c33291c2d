"""Fencing through the partition claim: the next owner learns the previous owner's
transactional id from PostgreSQL, and initialising that id aborts and fences its producer."""

from __future__ import annotations

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import ProducerFenced
from aiokafka.structs import TopicPartition

from consumers import repository as repo
from consumers.kafka_io import TransactionalWriter, fence, new_transactional_id
from consumers.outcomes import OutboundRecord
from schemas.settings import Settings
from tests.helpers.support import read_topic


async def test_each_claim_returns_the_id_it_replaced_and_raises_the_epoch(
    settings: Settings, database_url: str
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        group, topic = settings.consumer_group, settings.topic_requests
        first = await repo.claim_partition(conn, group, topic, 0, "host:1", "id-a")
        second = await repo.claim_partition(conn, group, topic, 0, "host:2", "id-b")
        third = await repo.claim_partition(conn, group, topic, 0, "host:1", "id-c")
        other = await repo.claim_partition(conn, group, topic, 1, "host:2", "id-b")
        assert first.previous_transactional_id is None
        assert second.previous_transactional_id == "id-a"
        assert third.previous_transactional_id == "id-b"
        assert other.previous_transactional_id is None
        assert [first.claim.epoch, second.claim.epoch, third.claim.epoch] == [1, 2, 3]
        # A batch transaction holding the first or second claim no longer may write.
        assert not (await repo.lock_standing(conn, [second.claim])).holds_claim
        assert (await repo.lock_standing(conn, [third.claim])).holds_claim
        # A poll's one transaction holds its claims only while every one of them is current.
        assert (await repo.lock_standing(conn, [third.claim, other.claim])).holds_claim
        assert not (await repo.lock_standing(conn, [other.claim, second.claim])).holds_claim
    finally:
        await conn.close()


async def test_fencing_an_id_aborts_its_open_transaction_and_refuses_its_commit(
    settings: Settings,
) -> None:
    zombie_id = new_transactional_id(settings, "test-host:1")
    zombie = TransactionalWriter(settings, zombie_id)
    await zombie.start()
    producer: AIOKafkaProducer | None = zombie._producer
    assert producer is not None
    try:
        await producer.begin_transaction()
        sent = await producer.send(settings.topic_outcomes, b"stale", key=b"k")
        await sent
        await fence(settings, zombie_id)
        with pytest.raises(ProducerFenced):
            await producer.commit_transaction()
    finally:
        await zombie.stop()
    # A fresh writer with the id it fenced works, and only its records are visible.
    successor = TransactionalWriter(settings, zombie_id)
    await successor.start()
    try:
        await successor.commit(
            [OutboundRecord(settings.topic_outcomes, b"k", b"fresh")],
            {TopicPartition(settings.topic_requests, 0): 1},
        )
    finally:
        await successor.stop()
    values = [r.value for r in await read_topic(settings, settings.topic_outcomes, expect=1)]
    assert values == [b"fresh"]
