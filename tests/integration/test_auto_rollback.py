"""The automatic rollback: failures past the threshold pause the consumer; nothing is lost."""

from __future__ import annotations

import asyncio

import asyncpg
from prometheus_client import CollectorRegistry

from ops.runtime.pause_switch import read_control, set_paused
from ops.runtime.topics import ensure_topics
from schemas.events import Status
from streams.app import run_stream
from tests.fixtures.creators import MakeCreators
from tests.fixtures.settings import MakeSettings
from tests.helpers.support import (
    encode,
    outcomes_of,
    read_topic,
    request_body,
    running_consumer,
    send_requests,
)


async def test_auto_rollback_pauses_publishing_and_resume_processes_what_waited(
    make_settings: MakeSettings, database_url: str, make_creators: MakeCreators
) -> None:
    settings = make_settings(
        topic_partitions=1,
        db_lock_timeout_ms=50,
        alert_window_seconds=20.0,
        alert_min_events=10,
        alert_evaluate_interval_seconds=0.2,
        alert_rollback_for_seconds=0.5,
        alert_error_rate_for_seconds=0.5,
    )
    await ensure_topics(settings)
    doomed = await make_creators(12)
    waiting = await make_creators(15)
    locker = await asyncpg.connect(database_url)
    held = locker.transaction()
    await held.start()
    await locker.execute(
        "SELECT 1 FROM stores WHERE id = ANY($1::uuid[]) FOR UPDATE",
        [c.store_id for c in doomed],
    )
    stop = asyncio.Event()
    started = asyncio.Event()
    stream = asyncio.create_task(
        run_stream(settings, stop=stop, started=started, registry=CollectorRegistry())
    )
    try:
        await asyncio.wait_for(started.wait(), 60)
        async with running_consumer(settings):
            await send_requests(settings, [encode(request_body(c)) for c in doomed], key=b"k")
            failed = outcomes_of(await read_topic(settings, settings.topic_outcomes, expect=12))
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
                await held.rollback()
                await send_requests(settings, [encode(request_body(c)) for c in waiting], key=b"k")
                await asyncio.sleep(3)
                during = await read_topic(settings, settings.topic_outcomes, expect=13, wait_s=2)
                assert len(during) == 12, "published while paused"
                await set_paused(pool, paused=False, reason=None, changed_by="cli:test")
                after = outcomes_of(
                    await read_topic(settings, settings.topic_outcomes, expect=12 + 15)
                )
            finally:
                await pool.close()
    finally:
        stop.set()
        await stream
        await locker.close()
    assert len(after) == 12 + 15
    assert [o.status for o in after[12:]] == [Status.PUBLISHED] * 15
