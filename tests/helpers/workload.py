"""A run of requests for fault tests: seeded creators, many requests, progress from the database."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from ops.dev.emit import request_producer
from ops.dev.seed import seed_population
from schemas.requests import publish_request, request_value
from schemas.settings import Settings


async def seed_and_send(
    settings: Settings,
    database_url: str,
    *,
    creators: int,
    requests: int,
    seed: int = 7,
    rate: float | None = None,
) -> int:
    """Seed creators and send `requests` publish requests for their stores; returns the count.

    At most `rate` per second when given. Each store gets several requests, so "published
    once" is tested on every store that publishes; a few percent refer to other users'
    stores to produce dead letters.
    """
    rng = random.Random(seed)
    conn = await asyncpg.connect(database_url)
    try:
        population = await seed_population(
            conn, creators, required_steps=settings.publish_required_steps, seed=seed
        )
    finally:
        await conn.close()
    people = population.creators
    started = time.monotonic()
    async with request_producer(settings) as producer:
        for index in range(requests):
            if rate is not None and index % 100 == 0:
                ahead = index / rate - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
            owner = rng.choice(people)
            user = owner.user_id if rng.random() > 0.03 else rng.choice(people).user_id
            await producer.send(
                settings.topic_requests,
                value=request_value(publish_request(user, owner.store_id)),
                key=str(owner.store_id).encode(),
            )
        await producer.flush()
    return requests


async def decided(database_url: str) -> int:
    """Requests recorded as decided so far: the run's progress."""
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM publish_requests"))
    finally:
        await conn.close()


async def wait_for_progress(database_url: str, at_least: int, wait_s: float = 300) -> int:
    deadline = time.monotonic() + wait_s
    while True:
        done = await decided(database_url)
        if done >= at_least or time.monotonic() > deadline:
            return done
        await asyncio.sleep(0.05)


async def committed_total(settings: Settings) -> int:
    """The consumer group's committed offsets on the requests topic, summed."""
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(settings.consumer_group)
    finally:
        await admin.close()
    return sum(o.offset for tp, o in offsets.items() if tp.topic == settings.topic_requests)


async def wait_until_committed(settings: Settings, sent: int, wait_s: float = 300) -> int:
    """Until the group has committed past every request sent (each partition's offsets are
    contiguous, so the sum reaching `sent` means every batch's transaction committed).

    Decided rows in the database are not enough: a batch decided there whose Kafka
    transaction was cut off still has to be redone before its outcomes exist."""
    deadline = time.monotonic() + wait_s
    done = 0
    while True:
        # A broker just back (or its coordinator moving) answers the next call.
        with contextlib.suppress(KafkaError):
            done = await committed_total(settings)
        if done >= sent or time.monotonic() > deadline:
            return done
        await asyncio.sleep(0.2)
