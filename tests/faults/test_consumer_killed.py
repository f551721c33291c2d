"""The consumer killed with SIGKILL mid-run, three times, and restarted each time."""

from __future__ import annotations

import random

import pytest

from tests.fixtures.processes import ConsumerProcessFactory
from tests.fixtures.settings import MakeSettingsWithTopics
from tests.helpers.accounting import every_request_once
from tests.helpers.workload import (
    seed_and_send,
    wait_for_progress,
    wait_until_committed,
)

REQUESTS = 20_000


@pytest.mark.timeout(600)
async def test_sigkill_mid_batch_loses_nothing_and_publishes_nothing_twice(
    make_settings_with_topics: MakeSettingsWithTopics,
    database_url: str,
    consumer_process: ConsumerProcessFactory,
) -> None:
    settings = await make_settings_with_topics(topic_partitions=6)
    sent = await seed_and_send(settings, database_url, creators=5_000, requests=REQUESTS)
    rng = random.Random(11)
    consumer = consumer_process(settings, "consumer")
    consumer.start()
    kills = []
    try:
        # Killed past 20% progress, three times, at moments that differ from run to run of
        # the batch loop: wherever the process happens to be when the progress is reached.
        for fraction in (
            0.2 + rng.random() * 0.1,
            0.45 + rng.random() * 0.1,
            0.7 + rng.random() * 0.1,
        ):
            reached = await wait_for_progress(database_url, int(sent * fraction))
            consumer.kill()
            kills.append(reached)
            consumer.start()
        await wait_until_committed(settings, sent)
    finally:
        assert consumer.terminate() == 0
    await every_request_once(
        settings,
        database_url,
        sent=sent,
        title=f"consumer SIGKILLed at {kills} of {sent} decided requests",
    )
