"""`store-publish emit`: requests from a file, stdin or a generator, signed when configured."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import TextIO

import asyncpg
from aiokafka import AIOKafkaProducer
from opentelemetry.trace import SpanKind, Tracer

from ops.runtime.tracing import span_headers
from schemas.requests import publish_request, request_value
from schemas.settings import Settings
from schemas.signing import signature_headers


@asynccontextmanager
async def request_producer(settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(
        **settings.kafka_client_options(), acks="all", enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


def key_of(value: bytes) -> bytes | None:
    """The store id a request names, as its key; None when the value does not say."""
    try:
        body = json.loads(value)
    except (ValueError, RecursionError):
        return None
    store_id = body.get("store_id") if isinstance(body, dict) else None
    return str(store_id).encode() if isinstance(store_id, str) else None


async def send_values(
    settings: Settings, values: Iterable[bytes], *, rate: float, tracer: Tracer | None = None
) -> int:
    """Send each value keyed by its store id, at most `rate` per second (0: no limit). With a
    `tracer`, each send starts a trace of its own and the record carries its `traceparent`."""
    sent = 0
    started = time.monotonic()
    key = settings.signing_key()
    async with request_producer(settings) as producer:
        topic = settings.topic_requests
        for value in values:
            headers = signature_headers(value, key)
            if tracer is None:
                await producer.send(topic, value=value, key=key_of(value), headers=headers)
            else:
                with tracer.start_as_current_span(
                    f"send {topic}",
                    kind=SpanKind.PRODUCER,
                    attributes={"messaging.system": "kafka", "messaging.destination.name": topic},
                ) as span:
                    headers.extend(span_headers(span))
                    await producer.send(topic, value=value, key=key_of(value), headers=headers)
            sent += 1
            if rate > 0:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        await producer.flush()
    return sent


async def emit_lines(
    settings: Settings, lines: TextIO, *, rate: float, tracer: Tracer | None = None
) -> int:
    values = (line.strip().encode("utf-8") for line in lines if line.strip())
    return await send_values(settings, values, rate=rate, tracer=tracer)


def synthetic_request(user_id: uuid.UUID, store_id: uuid.UUID) -> bytes:
    return request_value(
        publish_request(
            user_id,
            store_id,
            correlation_id=f"synthetic-{uuid.uuid4().hex[:12]}",
            notify_customers=random.random() < 0.5,
        )
    )


async def emit_synthetic(
    settings: Settings, count: int, *, rate: float, tracer: Tracer | None = None
) -> int:
    """`count` requests by owners of stores picked at random from the database."""
    conn = await asyncpg.connect(settings.dsn())
    try:
        owners = await conn.fetch("SELECT owner_id, id FROM stores ORDER BY random() LIMIT 100000")
    finally:
        await conn.close()
    if not owners:
        raise SystemExit("no stores in the database: seed some first (store-publish demo does)")
    picks = (random.choice(owners) for _ in range(count))
    return await send_values(
        settings,
        (synthetic_request(row["owner_id"], row["id"]) for row in picks),
        rate=rate,
        tracer=tracer,
    )
