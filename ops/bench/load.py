"""The benchmark's inputs: a seeded database copied afresh for each phase, the requests, topics.

Every phase starts from the same seeded state (a `CREATE DATABASE … TEMPLATE` copy), so a
phase never sees another's publications or idempotency records; every topic and database of
a run carries the run's prefix, so a run cleans up exactly what it made.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from ops.db.migrate import migrate_database
from ops.dev.requests import parties
from ops.dev.seed import Creator, Population, seed_population
from schemas.requests import publish_request, request_key, request_value
from schemas.settings import Settings
from schemas.signing import signature_headers

BENCH_STEPS = ("payments", "email_verification")

# Mostly creators publishing their own store (a second request for a store is
# `already_published`), with a little of each refusal the contract names.
REQUEST_MIX = (
    ("own store", 0.94),
    ("other user's store", 0.02),
    ("not confirmed", 0.01),
    ("unknown store", 0.01),
    ("unknown user", 0.01),
    ("malformed", 0.01),
)


@dataclass(frozen=True)
class Request:
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    event_id: str


def database_url(base_url: str, name: str) -> str:
    return urlunsplit(urlsplit(base_url)._replace(path="/" + name))


async def _admin_execute(base_url: str, sql: str) -> None:
    conn = await asyncpg.connect(base_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def create_seeded_database(base_url: str, name: str, creators: int) -> Population:
    """A migrated database `name` holding `creators` creators (the seed's realistic mix)."""
    await _admin_execute(base_url, f'CREATE DATABASE "{name}"')
    url = database_url(base_url, name)
    await migrate_database(url)
    conn = await asyncpg.connect(url)
    try:
        population = await seed_population(conn, creators, required_steps=BENCH_STEPS)
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return population


async def copy_database(base_url: str, template: str, name: str) -> str:
    await _admin_execute(base_url, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return database_url(base_url, name)


async def drop_databases(base_url: str, names: Sequence[str]) -> None:
    for name in names:
        await _admin_execute(base_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def request_for(
    settings: Settings, creators: Sequence[Creator], kind: str, rng: random.Random
) -> Request:
    owner, other = rng.choice(creators), rng.choice(creators)
    event_id = uuid.uuid4()
    user_id, store_id = parties(kind, owner.user_id, owner.store_id, other.user_id)
    value = request_value(
        publish_request(
            user_id,
            store_id,
            event_id=event_id,
            correlation_id=f"bench-{str(event_id)[:12]}",
            confirm_publish=kind != "not confirmed",
            notify_customers=rng.random() < 0.3,
        )
    )
    if kind == "malformed":
        value = value[: len(value) // 2]
    headers = signature_headers(value, settings.signing_key())
    return Request(request_key(store_id), value, headers, str(event_id))


def plan_requests(
    settings: Settings, population: Population, count: int, rng: random.Random
) -> list[Request]:
    kinds = rng.choices([k for k, _ in REQUEST_MIX], weights=[w for _, w in REQUEST_MIX], k=count)
    return [request_for(settings, population.creators, kind, rng) for kind in kinds]


def random_kind(rng: random.Random) -> str:
    return rng.choices([k for k, _ in REQUEST_MIX], weights=[w for _, w in REQUEST_MIX])[0]


async def delete_topics_with_prefix(settings: Settings, prefix: str) -> list[str]:
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())
    await admin.start()
    try:
        doomed = [name for name in await admin.list_topics() if name.startswith(prefix)]
        if doomed:
            await admin.delete_topics(doomed)
        return doomed
    finally:
        await admin.close()


def fast_producer(settings: Settings, *, linger_ms: int = 20) -> AIOKafkaProducer:
    """Batches with linger; callers keep the delivery futures rather than awaiting each."""
    return AIOKafkaProducer(
        **settings.kafka_client_options(),
        acks="all",
        enable_idempotence=True,
        linger_ms=linger_ms,
        max_batch_size=512 * 1024,
    )


async def preload(settings: Settings, topic: str, requests: Sequence[Request]) -> None:
    """Produce every request, keyed by store id; returns once all are acknowledged."""
    producer = fast_producer(settings)
    await producer.start()
    try:
        pending = [
            await producer.send(topic, value=r.value, key=r.key, headers=r.headers)
            for r in requests
        ]
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
