"""Helpers shared by integration and fault tests: seeding, producing, collecting, running.

Requests are built by ops.dev.requests, topics read by ops.oncall.topic_reader, child
processes run by ops.dev.processes: these only give them the tests' shapes."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Coroutine, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import asyncpg
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry

from ops.dev.processes import CliProcess
from ops.oncall.topic_reader import RawRecord, read_until
from schemas.events import PublishOutcome
from schemas.requests import publish_request, request_fields
from schemas.settings import Settings
from schemas.signing import sign


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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
    **changes: object,
) -> dict[str, object]:
    """A valid request (ops.dev.requests) by `creator` as its JSON object, then `changes`
    (any field, any value: a test of bad input changes a good request)."""
    request = publish_request(
        user_id or (creator.user_id if creator else uuid.uuid4()),
        store_id or (creator.store_id if creator else uuid.uuid4()),
        event_id=event_id,
        confirm_publish=confirm,
    )
    body = request_fields(request)
    body.update(changes)
    return body


def encode(body: dict[str, object]) -> bytes:
    return json.dumps(body).encode("utf-8")


@asynccontextmanager
async def producer_for(
    settings: Settings, *, transactional: bool = False
) -> AsyncIterator[AIOKafkaProducer]:
    """A started producer; `transactional` gives it an id of its own, so a test writes in
    transactions as the consumer does (commit markers, aborted records)."""
    identity = {"transactional_id": f"test-{uuid.uuid4().hex}"} if transactional else {}
    producer = AIOKafkaProducer(**settings.kafka_client_options(), acks="all", **identity)
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


async def send_requests(
    settings: Settings,
    values: Iterable[bytes | dict[str, object]],
    *,
    key: bytes | None = None,
    secret: str | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> int:
    """Produce requests, keyed by their store_id when they have one: a JSON object encoded,
    bytes as they are (a test of unreadable input sends those)."""
    sent = 0
    async with producer_for(settings) as producer:
        for given in values:
            value = given if isinstance(given, bytes) else encode(given)
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
) -> list[RawRecord]:
    """Read `topic` from the beginning (read_committed) until `expect` records or the timeout,
    and half a second longer, to catch records that should not be there."""
    return await read_until(settings, topic, expect=expect, wait_s=wait_s, settle_s=0.5)


def outcomes_of(records: Iterable[RawRecord]) -> list[PublishOutcome]:
    return [PublishOutcome.model_validate_json(r.value or b"") for r in records]


async def request_publishing(
    settings: Settings, creators: Iterable[Creator], *, key: bytes | None = None
) -> int:
    """Send one valid request by each of `creators` (keyed by its store, or by `key`)."""
    return await send_requests(settings, [request_body(c) for c in creators], key=key)


async def read_outcomes(
    settings: Settings, *, expect: int, wait_s: float = 60.0
) -> list[PublishOutcome]:
    """The outcomes topic read as `read_topic` reads it, parsed."""
    records = await read_topic(settings, settings.topic_outcomes, expect=expect, wait_s=wait_s)
    return outcomes_of(records)


async def fetch(database_url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    """The rows of `sql`, on a connection of its own."""
    conn = await asyncpg.connect(database_url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def fetch_value(database_url: str, sql: str, *args: object) -> object:
    """The first column of the first row of `sql` (None when there is none)."""
    rows = await fetch(database_url, sql, *args)
    return rows[0][0] if rows else None


Runner = Callable[[asyncio.Event, asyncio.Event], Coroutine[object, object, None]]


@asynccontextmanager
async def running(run: Runner) -> AsyncIterator[asyncio.Task[None]]:
    """`run(stop, started)` in this process until the block ends: entered once it has set
    `started` (or raised what it failed with first); stopped and awaited at the end."""
    stop, started = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run(stop, started))
    waiter = asyncio.create_task(started.wait())
    done, _ = await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        waiter.cancel()
        task.result()
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=60)


class App(Protocol):
    """`run_consumer` and `run_stream`: run until `stop`, having set `started`."""

    def __call__(
        self,
        settings: Settings,
        *,
        registry: CollectorRegistry | None,
        stop: asyncio.Event,
        started: asyncio.Event,
    ) -> Coroutine[object, object, None]: ...


def running_app(
    app: App, settings: Settings, registry: CollectorRegistry | None = None
) -> AbstractAsyncContextManager[asyncio.Task[None]]:
    """The real `app`, in this process, until the block ends."""
    return running(
        lambda stop, started: app(settings, registry=registry, stop=stop, started=started)
    )


def running_consumer(
    settings: Settings, registry: CollectorRegistry | None = None
) -> AbstractAsyncContextManager[asyncio.Task[None]]:
    """The real consumer, in this process, until the block ends."""
    from consumers.app import run_consumer

    return running_app(run_consumer, settings, registry)


def running_stream(
    settings: Settings, registry: CollectorRegistry | None = None
) -> AbstractAsyncContextManager[asyncio.Task[None]]:
    """The real rates stream, in this process, until the block ends."""
    from streams.app import run_stream

    return running_app(run_stream, settings, registry)


async def outcomes_by_request(
    settings: Settings, count: int, wait_s: float = 60.0
) -> dict[uuid.UUID | None, PublishOutcome]:
    records = await read_topic(settings, settings.topic_outcomes, expect=count, wait_s=wait_s)
    return {o.request_event_id: o for o in outcomes_of(records)}


async def metric_reaches(
    registry: CollectorRegistry,
    name: str,
    value: float,
    labels: dict[str, str] | None = None,
    *,
    wait_s: float = 30.0,
    at_least: bool = False,
) -> None:
    """Wait until the process running with `registry` reports `name` at `value` (or, with
    `at_least`, at `value` or more): the positive signal (paused, say) after which a test can
    watch for what must not happen."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s

    def reached() -> bool:
        found = registry.get_sample_value(name, labels or {})
        return found is not None and (found >= value if at_least else found == value)

    while not reached():
        assert loop.time() < deadline, f"{name} did not reach {value} in {wait_s} s"
        await asyncio.sleep(0.05)


async def holds_for(seconds: float, check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Assert `check()` at every look over `seconds`, the last at the end: an absence
    watched for the whole span once the process has reached the state, not slept through."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while True:
        assert await check(), what
        if loop.time() >= end:
            return
        await asyncio.sleep(min(0.2, max(0.0, end - loop.time())))


LogLines = list[dict[str, object]]


def times_logged(lines: LogLines, messages: Collection[str]) -> int:
    """How many of a process's log `lines` carry one of `messages`."""
    return sum(1 for line in lines if line.get("message") in messages)


async def log_shows(
    process: CliProcess, shows: Callable[[LogLines], bool], what: str, *, wait_s: float = 60.0
) -> None:
    """Wait until the lines `process` has logged so far show `what` (`shows(lines)`): the
    sign that it has reached a state, when the process is a child with only its log to ask."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while not shows(process.log_lines()):
        assert process.poll() is None, f"{process.command} exited before it showed {what}"
        assert loop.time() < deadline, f"{process.command} did not show {what} in {wait_s} s"
        await asyncio.sleep(0.1)
