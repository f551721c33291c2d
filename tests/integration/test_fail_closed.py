"""Fail closed: when the gating state cannot be read after the retries, nothing is published."""

from __future__ import annotations

import asyncpg

from schemas.dead_letter import DeadLetterHeaders
from schemas.events import Reason, Status
from tests.fixtures.creators import MakeCreators
from tests.fixtures.settings import MakeSettingsWithTopics
from tests.helpers.locks import step_definitions_locked
from tests.helpers.support import (
    read_outcomes,
    read_topic,
    request_publishing,
    running_consumer,
)


async def test_unreadable_gating_state_fails_closed_with_gating_unavailable(
    make_settings_with_topics: MakeSettingsWithTopics,
    database_url: str,
    make_creators: MakeCreators,
) -> None:
    settings = await make_settings_with_topics(topic_partitions=1, db_lock_timeout_ms=100)
    creators = await make_creators(2)
    async with step_definitions_locked(database_url):
        await request_publishing(settings, creators, key=b"k")
        async with running_consumer(settings):
            outcomes = await read_outcomes(settings, expect=2)
    assert [(o.status, o.reason) for o in outcomes] == [
        (Status.FAILED, Reason.GATING_UNAVAILABLE)
    ] * 2
    assert all(o.attempts == settings.retry_max_attempts for o in outcomes)
    dead = await read_topic(settings, settings.topic_dlq, expect=2)
    assert [DeadLetterHeaders.from_kafka(list(r.headers)).reason for r in dead] == [
        Reason.GATING_UNAVAILABLE
    ] * 2
    conn = await asyncpg.connect(database_url)
    try:
        published = await conn.fetchval("SELECT count(*) FROM stores WHERE status = 'published'")
        events = await conn.fetchval("SELECT count(*) FROM onboarding_events")
    finally:
        await conn.close()
    assert published == 0
    assert events == 0
