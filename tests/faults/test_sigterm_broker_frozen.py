"""SIGTERM while the broker is frozen (SIGSTOP) mid-run: the consumer's fetch or Kafka
transaction hangs, yet it exits 0 within its grace and client-stop bounds; the poll in flight
is handed back, and a consumer started after the broker thaws finishes the run with an exact
accounting: every request one outcome, nothing published twice."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from ops.runtime.topics import ensure_topics
from tests.fixtures.processes import ConsumerProcessFactory
from tests.fixtures.settings import MakeSettings
from tests.helpers.accounting import account
from tests.helpers.services import OwnServices
from tests.helpers.workload import seed_and_send, wait_for_progress, wait_until_committed

REQUESTS = 6_000


def _broker_pid(services: OwnServices) -> int:
    return int((Path(services.env["SERVICES_HOME"]) / "kafka.pid").read_text().strip())


@pytest.mark.timeout(600)
async def test_sigterm_with_the_broker_frozen_mid_run_exits_promptly_and_loses_nothing(
    own_services: OwnServices,
    make_own_settings: MakeSettings,
    own_database_url: str,
    consumer_process: ConsumerProcessFactory,
) -> None:
    settings = make_own_settings(topic_partitions=3)
    await ensure_topics(settings)
    sent = await seed_and_send(settings, own_database_url, creators=2_000, requests=REQUESTS)
    consumer = consumer_process(settings, "consumer").start()
    broker = _broker_pid(own_services)
    try:
        await wait_for_progress(own_database_url, REQUESTS // 4)
        os.kill(broker, signal.SIGSTOP)
        await asyncio.sleep(1.0)
        sent_at = time.monotonic()
        assert consumer.process is not None
        consumer.process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(consumer.process.wait, 60)
        took = time.monotonic() - sent_at
    finally:
        os.kill(broker, signal.SIGCONT)
    print(f"\nconsume: exit {code} {took:.2f} s after SIGTERM with the broker frozen")
    assert code == 0
    assert took < 15.0
    consumer.start()
    try:
        await wait_until_committed(settings, sent)
    finally:
        assert consumer.terminate() == 0
    books = await account(settings, own_database_url, sent=sent)
    print(books.table("SIGTERM with the broker frozen, then a fresh consumer"))
    assert books.problems() == []
