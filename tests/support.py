"""Helpers shared by integration and fault tests: seeding, producing, collecting, running."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from schemas.events import PublishOutcome
from schemas.settings import Settings
from schemas.signing import sign


@dataclass(frozen=True)
class Creator:
    user_id: uuid.UUID
    store_id: uuid.UUID


async def seed_steps(conn: asyncpg.Connection, steps: Iterable[str] = ("payments",)) -> None:
    for step in steps:
        await conn.execute(
            """INSERT INTO onboarding_step_definitions (id, version, title, required)
               VALUES ($1, 1, $1, true) ON CONFLICT DO NOTHING""",
            step,
        )


async def seed_creator(
    conn: asyncpg.Connection,
    *,
    done: Iterable[str] = ("payments",),
    skipped: Iterable[str] = (),
    published: bool = False,
) -> Creator:
    user_id, store_id = uuid.uuid4(), uuid.uuid4()
    await conn.execute(
        "INSERT INTO users (id, email) VALUES ($1, $2)", user_id, f"{user_id.hex}@example.com"
    )
    await conn.execute(
        """INSERT INTO stores (id, owner_id, slug, status, store_url, published_at)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        store_id,
        user_id,
        f"shop-{store_id.hex[:12]}",
        "published" if published else "draft",
        f"https://shops.example.com/shop-{store_id.hex[:12]}" if published else None,
        datetime.now(UTC) if published else None,
    )
    for status, steps in (("done", done), ("skipped", skipped)):
        for step in steps:
            await conn.execute(
                """INSERT INTO user_onboarding (user_id, step_id, version, status)
                   VALUES ($1, $2, 1, $3)""",
                user_id,
                step,
                status,
            )
    return Creator(user_id, store_id)


def request_body(
    creator: Creator | None = None,
    *,
    event_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
    store_id: uuid.UUID | None = None,
    confirm: bool = True,
    **extra: object,
) -> dict[str, object]:
    body: dict[str, object] = {
        "event_id": str(event_id or uuid.uuid4()),
        "schema_version": 1,
        "occurred_at": datetime.now(UTC).isoformat(),
        "user_id": str(user_id or (creator.user_id if creator else uuid.uuid4())),
        "store_id": str(store_id or (creator.store_id if creator else uuid.uuid4())),
        "confirm_publish": confirm,
    }
    body.update(extra)
    return body


def encode(body: dict[str, object]) -> bytes:
    return json.dumps(body).encode("utf-8")


@asynccontextmanager
async def producer_for(settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(**settings.kafka_client_options(), acks="all")
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


async def send_requests(
    settings: Settings,
    values: Iterable[bytes],
    *,
    key: bytes | None = None,
    secret: str | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> int:
    """Produce raw request values, keyed by their store_id when they have one."""
    sent = 0
    async with producer_for(settings) as producer:
        for value in values:
            record_key = key
            if record_key is None:
                try:
                    record_key = str(json.loads(value)["store_id"]).encode()
                except (ValueError, KeyError, TypeError, RecursionError):
                    record_key = b"unparseable"
            record_headers = list(headers or [])
            if secret is not None:
                record_headers.append(("signature", sign(value, secret.encode()).encode()))
            await producer.send(
                settings.topic_requests, value=value, key=record_key, headers=record_headers
            )
            sent += 1
        await producer.flush()
    return sent


async def read_topic(
    settings: Settings, topic: str, *, expect: int, wait_s: float = 60.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read `topic` from the beginning (read_committed) until `expect` records or the timeout."""
    # No group: every partition, from the beginning, nothing committed.
    consumer = AIOKafkaConsumer(
        topic,
        **settings.kafka_client_options(),
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        found: list[ConsumerRecord[bytes, bytes]] = []
        deadline = asyncio.get_running_loop().time() + wait_s
        while len(found) < expect and asyncio.get_running_loop().time() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                found.extend(records)
        # A little longer, to catch records that should not be there.
        batches = await consumer.getmany(timeout_ms=500)
        for records in batches.values():
            found.extend(records)
        return found
    finally:
        await consumer.stop()


def outcomes_of(records: Iterable[ConsumerRecord[bytes, bytes]]) -> list[PublishOutcome]:
    return [PublishOutcome.model_validate_json(r.value or b"") for r in records]


@asynccontextmanager
async def running_consumer(settings: Settings) -> AsyncIterator[asyncio.Task[None]]:
    """The real consumer, in this process, until the block ends."""
    from consumers.app import run_consumer

    stop, started = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_consumer(settings, stop=stop, started=started))
    done, _ = await asyncio.wait(
        [task, asyncio.create_task(started.wait())], return_when=asyncio.FIRST_COMPLETED
    )
    if task in done:
        task.result()
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=60)


async def outcomes_by_request(
    settings: Settings, count: int, wait_s: float = 60.0
) -> dict[uuid.UUID | None, PublishOutcome]:
    records = await read_topic(settings, settings.topic_outcomes, expect=count, wait_s=wait_s)
    return {o.request_event_id: o for o in outcomes_of(records)}


class ConsumerProcess:
    """`store-publish consume` as a child process, its JSON log lines captured."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self._settings = settings
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ops.cli", "consume"],
            env=self._settings.child_environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def terminate(self, timeout: float = 60) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=30)

    def log_lines(self) -> list[dict[str, object]]:
        lines = []
        for raw in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                lines.append(json.loads(raw))
            except ValueError:
                continue
        return lines
