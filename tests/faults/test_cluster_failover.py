"""Faults of a three-broker cluster while requests flow, in the style of Kafka's own
transaction system test: the consumer (a child process) and the rates stream work through a
run of requests while brokers are SIGKILLed or restarted; afterwards every request has one
outcome visible to read_committed readers, no store is published twice, order is kept per
partition, and the stream counted every outcome exactly once. The time from each fault to
the first outcome decided after it is printed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka.client import CoordinationType

from ops.dev.processes import CliProcess
from ops.runtime.topics import ensure_topics
from schemas.settings import Settings
from tests.fixtures.cluster import (
    NODES,
    Cluster,
    OutcomeClock,
    outcome_clock,
    transactional_id,
)
from tests.fixtures.processes import ConsumerProcessFactory
from tests.helpers.accounting import Accounting, account
from tests.helpers.support import holds_for, log_shows, times_logged
from tests.helpers.workload import seed_and_send, wait_for_progress, wait_until_committed

# A few thousand requests, sent at a rate that keeps traffic flowing through every fault.
REQUESTS = 3_600
RATE = 30.0
# How long one node of three is watched for outcomes that must not come.
QUIET_S = 15.0
# What the consumer logs when a poll's transaction or its writer is refused.
HANDED_BACK = {
    "Kafka transaction failed, batch handed back",
    "Kafka writer not started, poll handed back",
}


async def stream_counted(port: int) -> float:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    try:
        writer.write(b"GET /metrics HTTP/1.0\r\nHost: test\r\n\r\n")
        await writer.drain()
        text = (await asyncio.wait_for(reader.read(), 5)).decode("utf-8", "replace")
    finally:
        writer.close()
    for line in text.splitlines():
        if line.startswith("store_publish_stream_outcomes_total "):
            return float(line.split()[1])
    return 0.0


async def stream_counts_exactly(settings: Settings, books: Accounting, wait_s: float = 60) -> float:
    """What the stream counted, once it has caught up with the outcomes (or `wait_s` passed)."""
    deadline = time.monotonic() + wait_s
    counted = 0.0
    while time.monotonic() < deadline:
        counted = await stream_counted(settings.stream_http_port)
        if counted >= books.outcome_records:
            break
        await asyncio.sleep(0.5)
    return counted


async def first_outcome_after(clock: OutcomeClock, moment: float, wait_s: float = 120) -> float:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        found = clock.first_after(moment)
        if found is not None:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"no outcome in the {wait_s:.0f} s after the fault")


def print_recovery(rows: list[tuple[str, int, float, float]]) -> None:
    print()
    print("== recovery: fault -> first outcome decided after it (read_committed) ==")
    for name, node, seconds, resync in rows:
        print(f"{name:<40} node {node}  {seconds:6.2f} s   replicas back in sync {resync:5.1f} s")


async def start_stream(settings: Settings, tmp_path: Path, wait_s: float = 120) -> CliProcess:
    """The rates stream as a child, once it has started: a broker killed while the stream
    still starts ends it (NodeNotReadyError is not taken for an unreachable broker there)."""
    stream = CliProcess("stream", settings, tmp_path / "stream.log").start()
    deadline = time.monotonic() + wait_s
    while not stream.logged("Rates stream started"):
        assert stream.poll() is None, "the rates stream exited at start"
        assert time.monotonic() < deadline, "the rates stream did not start"
        await asyncio.sleep(0.2)
    return stream


@dataclass(frozen=True)
class Rig:
    """What both tests run on: the cluster, the database, the consumer child and a folder."""

    cluster: Cluster
    database_url: str
    make_settings: Callable[..., Settings]
    consumer_process: ConsumerProcessFactory
    folder: Path

    @contextlib.asynccontextmanager
    async def running(self, settings: Settings) -> AsyncIterator[CliProcess]:
        """The rates stream, then the consumer (yielded), until the block ends; the stream
        must have lived through it."""
        stream = await start_stream(settings, self.folder)
        consumer = self.consumer_process(settings).start()
        try:
            yield consumer
            assert stream.poll() is None, "the rates stream exited during the faults"
        finally:
            assert consumer.terminate() == 0
            stream.stop()

    async def books(self, settings: Settings, sent: int) -> tuple[Accounting, float]:
        """The run's accounting, and what the stream counted once it caught up with it."""
        books = await account(settings, self.database_url, sent=sent)
        return books, await stream_counts_exactly(settings, books)


@pytest.fixture
def rig(
    make_cluster_settings: Callable[..., Settings],
    whole_cluster: Cluster,
    database_url: str,
    consumer_process: ConsumerProcessFactory,
    tmp_path: Path,
) -> Rig:
    return Rig(whole_cluster, database_url, make_cluster_settings, consumer_process, tmp_path)


def check_books(books: Accounting, counted: float, title: str, started: float) -> None:
    print(books.table(title))
    print(f"stream counted {counted:.0f} of {books.outcome_records} outcome records")
    print(f"test took {time.monotonic() - started:.1f} s")
    assert books.problems() == []
    assert counted == books.outcome_records


@pytest.mark.timeout(900)
async def test_leader_coordinators_killed_and_a_rolling_restart_lose_nothing(rig: Rig) -> None:
    cluster, database_url = rig.cluster, rig.database_url
    settings = rig.make_settings()
    await ensure_topics(settings)
    started = time.monotonic()
    rows: list[tuple[str, int, float, float]] = []
    async with rig.running(settings), outcome_clock(settings) as clock:
        sending = asyncio.create_task(
            seed_and_send(settings, database_url, creators=1_500, requests=REQUESTS, rate=RATE)
        )
        await wait_for_progress(database_url, 200)
        leaders = await cluster.leaders(settings.topic_requests)
        targets = [
            ("leader of the requests partitions", max(NODES, key=list(leaders.values()).count)),
            (
                "transaction coordinator",
                await cluster.coordinator(
                    CoordinationType.TRANSACTION,
                    await transactional_id(settings, database_url),
                ),
            ),
            (
                "group coordinator",
                await cluster.coordinator(CoordinationType.GROUP, settings.consumer_group),
            ),
        ]
        for name, node in targets:
            killed = cluster.kill(node)
            seconds = await first_outcome_after(clock, killed)
            cluster.start(node)
            resync = await cluster.wait_in_sync(settings.topic_requests)
            rows.append((f"SIGKILL {name}", node, seconds, resync))
        for node in NODES:
            stopped = cluster.stop(node)
            cluster.start(node)
            seconds = await first_outcome_after(clock, stopped)
            resync = await cluster.wait_in_sync(settings.topic_requests)
            rows.append(("rolling restart (SIGTERM, start)", node, seconds, resync))
        sent = await sending
        assert await wait_until_committed(settings, sent) >= sent
        books, counted = await rig.books(settings, sent)
    print_recovery(rows)
    check_books(
        books, counted, f"cluster faults under {RATE:g} requests/s, {sent} requests", started
    )
    assert all(seconds < 60 for _, _, seconds, _ in rows), rows


@pytest.mark.timeout(900)
async def test_two_of_three_go_on_and_one_of_three_pauses_until_a_second_returns(
    rig: Rig,
) -> None:
    cluster, database_url = rig.cluster, rig.database_url
    settings = rig.make_settings(consumer_max_batch=200)
    await ensure_topics(settings)
    started = time.monotonic()
    sent = await seed_and_send(settings, database_url, creators=1_000, requests=3_000)
    async with rig.running(settings) as consumer:
        async with outcome_clock(settings) as clock:
            await wait_for_progress(database_url, 300)
            first_down = cluster.kill(1)
            two_of_three = await first_outcome_after(clock, first_down)
            await wait_for_progress(database_url, 1_500)
            refusals = times_logged(consumer.log_lines(), HANDED_BACK)
            second_down = cluster.kill(2)
            # What was in flight has settled once a transaction fails on the one node left
            # (at KAFKA_COMMIT_TIMEOUT_MS): the consumer's transactions are one at a time, so
            # any before it are over. Then watch: nothing may come out.
            await log_shows(
                consumer,
                lambda lines: times_logged(lines, HANDED_BACK) > refusals,
                "a transaction refused on one node",
                wait_s=90,
            )
            quiet_from = time.monotonic()
            settled_in = quiet_from - second_down

            async def quiet() -> bool:
                return clock.since(quiet_from) == 0

            await holds_for(QUIET_S, quiet, "an outcome came out on one node of three")
            during_one = clock.since(quiet_from)
            returned = time.monotonic()
            cluster.start(2)
            resumed = await first_outcome_after(clock, returned)
            assert await wait_until_committed(settings, sent) >= sent
        cluster.start(1)
        books, counted = await rig.books(settings, sent)
    print()
    print(f"one node killed: first outcome after it in {two_of_three:.2f} s (two of three up)")
    print(
        f"second node killed: {during_one} outcomes in {QUIET_S:.0f} s on one of three "
        f"(after {settled_in:.1f} s to settle)"
    )
    print(f"second node back: first outcome after its start in {resumed:.2f} s")
    print(f"(second kill at {second_down - started:.1f} s into the test)")
    check_books(books, counted, f"two of three, then one of three, {sent} requests", started)
    assert during_one == 0
