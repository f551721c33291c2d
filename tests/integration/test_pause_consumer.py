"""Pause with the real consumer: everything is held in Kafka, and resume processes all of it."""

from __future__ import annotations

import asyncio
import json

import asyncpg
from prometheus_client import CollectorRegistry

from schemas.events import Status
from schemas.settings import Settings
from tests.fixtures.creators import MakeCreators
from tests.helpers.dlq import cli
from tests.helpers.support import (
    metric_reaches,
    read_outcomes,
    read_topic,
    request_publishing,
    running_consumer,
)


async def test_pause_holds_every_request_and_resume_processes_all_of_them(
    settings: Settings, database_url: str, make_creators: MakeCreators
) -> None:
    creators = await make_creators(5)

    paused = await cli(settings, "pause", "--reason", "partial rollback drill")
    assert paused.code == 0, paused.err
    registry = CollectorRegistry()
    async with running_consumer(settings, registry):
        await request_publishing(settings, creators)
        # Once the consumer says it is paused, nothing comes out for many times its pause
        # poll interval.
        await metric_reaches(registry, "store_publish_paused", 1)
        held = await read_topic(settings, settings.topic_outcomes, expect=1, wait_s=4)
        status = json.loads((await cli(settings, "status", "--json")).out)

        resumed = await cli(settings, "resume")
        assert resumed.code == 0, resumed.err
        outcomes = await read_outcomes(settings, expect=5)
        for _ in range(40):
            drained = json.loads((await cli(settings, "status", "--json")).out)
            if drained["total_lag"] == 0:
                break
            await asyncio.sleep(0.5)

    assert held == []
    assert status["paused"] is True
    assert status["reason"] == "partial rollback drill"
    assert status["total_lag"] == 5  # held in Kafka, not lost
    assert [o.status for o in outcomes] == [Status.PUBLISHED] * 5
    assert drained["paused"] is False
    assert drained["total_lag"] == 0
    conn = await asyncpg.connect(database_url)
    try:
        draft = await conn.fetchval("SELECT count(*) FROM stores WHERE status = 'draft'")
    finally:
        await conn.close()
    assert draft == 0
