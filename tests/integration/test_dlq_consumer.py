"""Replay with the real consumer: a database fault's failures publish exactly once."""

from __future__ import annotations

import uuid

import asyncpg

from schemas.events import Reason, Status
from tests.fixtures.creators import MakeCreators
from tests.fixtures.settings import MakeSettingsWithTopics
from tests.helpers.dlq import cli, json_lines
from tests.helpers.locks import stores_locked
from tests.helpers.support import (
    outcomes_of,
    read_topic,
    request_body,
    running_consumer,
    send_requests,
)


async def test_replay_after_a_database_fault_publishes_each_failed_request_exactly_once(
    make_settings_with_topics: MakeSettingsWithTopics,
    database_url: str,
    make_creators: MakeCreators,
) -> None:
    creators = await make_creators(3)
    # Row locks held past the retry budget: the fault fails every request.
    quick = await make_settings_with_topics(db_lock_timeout_ms=200)
    bodies = [request_body(creator) for creator in creators]
    doomed = [creator.store_id for creator in creators]
    async with running_consumer(quick), stores_locked(database_url, doomed) as lock:
        await send_requests(quick, bodies)
        failed = outcomes_of(await read_topic(quick, quick.topic_outcomes, expect=3))
        await lock.release()
        assert {(o.status, o.reason) for o in failed} == {(Status.FAILED, Reason.RETRIES_EXHAUSTED)}
        assert len(await read_topic(quick, quick.topic_dlq, expect=3)) == 3

        listed = await cli(quick, "dlq", "list", "--json", "--reason", "retries_exhausted")
        assert [row["state"] for row in json_lines(listed.out)] == ["send"] * 3

        first = await cli(quick, "dlq", "replay", "--reason", "retries_exhausted", "--yes")
        assert first.code == 0, first.err
        assert "sent 3 of 3" in first.out
        after_first = outcomes_of(await read_topic(quick, quick.topic_outcomes, expect=6))

        # Replaying the same records again: the consumer answers from its record.
        second = await cli(quick, "dlq", "replay", "--reason", "retries_exhausted", "--yes")
        assert second.code == 0, second.err
        after_second = outcomes_of(await read_topic(quick, quick.topic_outcomes, expect=9))

    requested = {uuid.UUID(str(body["event_id"])) for body in bodies}
    published = [o for o in after_first if o.status is Status.PUBLISHED]
    assert {o.request_event_id for o in published} == requested
    again = [o for o in after_second if o.status is not Status.FAILED]
    assert len(again) == 6
    assert {o.status for o in again} == {Status.PUBLISHED}  # the same outcome, not a new one
    assert len({o.event_id for o in again}) == 3

    conn = await asyncpg.connect(database_url)
    try:
        stores = await conn.fetch(
            "SELECT status, published_by_event_id FROM stores WHERE id = ANY($1::uuid[])",
            [creator.store_id for creator in creators],
        )
        analytics = await conn.fetchval(
            "SELECT count(*) FROM onboarding_events WHERE event_type = 'store.published'"
        )
        decided = await conn.fetch("SELECT status FROM publish_requests")
    finally:
        await conn.close()
    assert {row["status"] for row in stores} == {"published"}
    assert {row["published_by_event_id"] for row in stores} == requested
    assert analytics == 3  # one analytics row per store: nothing happened twice
    assert sorted(row["status"] for row in decided) == ["published"] * 3
    # Nothing failed again: no new dead letter, so nothing can loop.
    assert len(await read_topic(quick, quick.topic_dlq, expect=4, wait_s=2)) == 3
