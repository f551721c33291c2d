"""SIGTERM and SIGINT stop `store-publish consume` and `store-publish stream` promptly, with exit
code 0, in every state: the database or the broker unreachable at start, a partition claim
waiting on a lock, the consumer held back by a database fault. Each test prints the time
to exit; the bound asserted is generous for a shared machine, the figure is the point."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable

import asyncpg
import pytest

from ops.dev.processes import CliProcess
from ops.runtime.topics import ensure_topics
from schemas.settings import Settings
from tests.fixtures.creators import MakeCreators
from tests.fixtures.processes import ConsumerProcessFactory
from tests.fixtures.settings import MakeSettings
from tests.helpers.support import read_topic, request_body, send_requests

# Nothing listens here: below the ephemeral port range, so no client can connect to itself.
CLOSED = "127.0.0.1:1"
# The bound: the consumer's shutdown grace (3 s) and client stop bound (3 s) are the design;
# past this something hangs.
EXIT_WITHIN_S = 15.0


async def _wait_logged(process: CliProcess, message: str, within_s: float = 60.0) -> None:
    deadline = time.monotonic() + within_s
    while not process.logged(message):
        assert process.poll() is None, f"exited early: {process.log_path.read_text()[-2000:]}"
        assert time.monotonic() < deadline, f"never logged {message!r}"
        await asyncio.sleep(0.1)


def _signal_and_time(process: CliProcess, signum: int = signal.SIGTERM) -> float:
    assert process.process is not None
    sent = time.monotonic()
    process.process.send_signal(signum)
    code = process.process.wait(timeout=EXIT_WITHIN_S + 30)
    took = time.monotonic() - sent
    print(f"\n{process.command}: exit {code} {took:.2f} s after {signal.Signals(signum).name}")
    assert code == 0
    assert took < EXIT_WITHIN_S
    return took


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_consumer_stops_while_the_database_is_unreachable_at_start(
    settings: Settings, consumer_process: ConsumerProcessFactory, signum: int
) -> None:
    unreachable = settings.model_copy(
        update={"database_url": type(settings.database_url)(f"postgresql://postgres@{CLOSED}/x")}
    )
    process = consumer_process(unreachable).start()
    await _wait_logged(process, "Waiting for the database to claim a partition")
    _signal_and_time(process, signum)


async def test_consumer_stops_while_the_broker_is_unreachable_at_start(
    make_settings: MakeSettings, consumer_process: ConsumerProcessFactory
) -> None:
    process = consumer_process(make_settings(kafka_bootstrap_servers=CLOSED)).start()
    await _wait_logged(process, "Waiting for Kafka")
    _signal_and_time(process)


async def test_consumer_stops_while_its_partition_claim_waits_on_a_lock(
    settings: Settings, database_url: str, consumer_process: ConsumerProcessFactory
) -> None:
    # An earlier owner's claims, locked as by a batch of a frozen process: the claim waits
    # out the lock timeout again and again.
    admin = await asyncpg.connect(database_url)
    try:
        for partition in range(settings.topic_partitions):
            await admin.execute(
                """INSERT INTO partition_owners
                          (consumer_group, topic, partition, owner, transactional_id)
                   VALUES ($1, $2, $3, 'frozen', 'frozen-id')""",
                settings.consumer_group,
                settings.topic_requests,
                partition,
            )
        held = admin.transaction()
        await held.start()
        await admin.execute(
            "SELECT 1 FROM partition_owners WHERE consumer_group = $1 FOR UPDATE",
            settings.consumer_group,
        )
        process = consumer_process(settings.model_copy(update={"db_lock_timeout_ms": 300}))
        process.start()
        await _wait_logged(process, "Waiting for the database to claim a partition")
        _signal_and_time(process)
        await held.rollback()
    finally:
        await admin.close()


async def test_consumer_stops_while_held_back_by_a_database_fault(
    settings: Settings,
    database_url: str,
    make_creators: MakeCreators,
    consumer_process: ConsumerProcessFactory,
) -> None:
    (creator,) = await make_creators(1)
    warm = await make_creators(1)
    process = consumer_process(settings).start()
    # Asserted and working first, then the fault.
    await send_requests(settings, [request_body(warm[0])])
    assert len(await read_topic(settings, settings.topic_outcomes, expect=1)) == 1
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute("ALTER TABLE onboarding_events RENAME COLUMN metadata TO m_old")
        await send_requests(settings, [request_body(creator)])
        await _wait_logged(
            process, "Database fault, publishing held back and requests wait in Kafka"
        )
        _signal_and_time(process)
    finally:
        await admin.close()


@pytest.mark.parametrize(
    "unreachable",
    [
        pytest.param(lambda s: {"kafka_bootstrap_servers": CLOSED}, id="broker"),
        pytest.param(
            lambda s: {"database_url": type(s.database_url)(f"postgresql://postgres@{CLOSED}/x")},
            id="database",
        ),
    ],
)
async def test_stream_stops_while_a_service_is_unreachable_at_start(
    settings: Settings,
    tmp_path: object,
    unreachable: Callable[[Settings], dict[str, object]],
) -> None:
    from pathlib import Path

    await ensure_topics(settings)
    log_path = Path(str(tmp_path)) / "stream.log"
    process = CliProcess("stream", settings.model_copy(update=unreachable(settings)), log_path)
    process.start()
    try:
        # Long enough to be inside faust's start (or running, without a database).
        await asyncio.sleep(4)
        assert process.poll() is None, log_path.read_text()[-2000:]
        _signal_and_time(process)
    finally:
        process.stop(timeout=5)
