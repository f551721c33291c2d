"""The automatic rollback: failures past the threshold pause the consumer; nothing is lost."""

from __future__ import annotations

import asyncio

import asyncpg
from prometheus_client import CollectorRegistry

from ops.runtime.pause_switch import read_control, set_paused
from schemas.events import Status
from streams.app import run_stream
from tests.fixtures.creators import MakeCreators
from tests.fixtures.settings import MakeSettingsWithTopics
from tests.helpers.locks import stores_locked
from tests.helpers.support import (
    metric_reaches,
    read_outcomes,
    read_topic,
    request_publishing,
    running_consumer,
)


async def test_auto_rollback_pauses_publishing_and_resume_processes_what_waited(
    make_settings_with_topics: MakeSettingsWithTopics,
    database_url: str,
    make_creators: MakeCreators,
) -> None:
    settings = await make_settings_with_topics(
        topic_partitions=1,
        db_lock_timeout_ms=50,
        alert_window_seconds=20.0,
        alert_min_events=10,
        alert_evaluate_interval_seconds=0.2,
        stream_fetch_max_wait_ms=100,
        alert_rollback_for_seconds=0.5,
        alert_error_rate_for_seconds=0.5,
    )
    doomed = await make_creators(12)
    waiting = await make_creators(15)
    stop = asyncio.Event()
    started = asyncio.Event()
    async with stores_locked(database_url, [c.store_id for c in doomed]) as lock:
        stream = asyncio.create_task(
            run_stream(settings, stop=stop, started=started, registry=CollectorRegistry())
        )
        try:
            await asyncio.wait_for(started.wait(), 60)
            consumer_registry = CollectorRegistry()
            async with running_consumer(settings, consumer_registry):
                await request_publishing(settings, doomed, key=b"k")
                failed = await read_outcomes(settings, expect=12)
                assert {o.status for o in failed} == {Status.FAILED}
                pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
                try:
                    for _ in range(100):
                        if (await read_control(pool)).paused:
                            break
                        await asyncio.sleep(0.1)
                    state = await read_control(pool)
                    assert state.paused
                    assert state.changed_by == "alert:store_publish_auto_rollback"
                    # The consumer has read the switch: from here nothing more comes out.
                    await metric_reaches(consumer_registry, "store_publish_paused", 1)
                    await lock.release()
                    await request_publishing(settings, waiting, key=b"k")
                    during = await read_topic(
                        settings, settings.topic_outcomes, expect=13, wait_s=5
                    )
                    assert len(during) == 12, "published while paused"
                    await set_paused(pool, paused=False, reason=None, changed_by="cli:test")
                    after = await read_outcomes(settings, expect=12 + 15)
                finally:
                    await pool.close()
        finally:
            stop.set()
            await stream
    assert len(after) == 12 + 15
    assert [o.status for o in after[12:]] == [Status.PUBLISHED] * 15
