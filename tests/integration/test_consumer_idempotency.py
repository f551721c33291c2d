"""Idempotency: redelivery, replay of a final outcome, replay of a failed one, ten at once."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from schemas.events import Reason, Status
from schemas.settings import Settings
from tests.fixtures.creators import MakeCreators
from tests.fixtures.settings import MakeSettings, MakeSettingsWithTopics
from tests.helpers.locks import stores_locked
from tests.helpers.support import (
    encode,
    outcomes_of,
    read_outcomes,
    read_topic,
    request_body,
    running_consumer,
    send_requests,
)


async def _count(database_url: str, sql: str, *args: object) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval(sql, *args))
    finally:
        await conn.close()


async def test_a_replayed_request_gets_the_same_outcome_and_no_second_side_effect(
    settings: Settings, database_url: str, make_creators: MakeCreators
) -> None:
    (creator,) = await make_creators()
    value = encode(request_body(creator))
    async with running_consumer(settings):
        await send_requests(settings, [value])
        first = await read_outcomes(settings, expect=1)
        await send_requests(settings, [value, value])
        every = await read_outcomes(settings, expect=3)
    assert len(every) == 3
    assert {o.model_dump_json() for o in every} == {first[0].model_dump_json()}
    assert first[0].status is Status.PUBLISHED
    assert (
        await _count(
            database_url,
            "SELECT count(*) FROM onboarding_events WHERE event_type = 'store.published'",
        )
        == 1
    )


async def test_ten_requests_for_one_store_sent_at_once_publish_it_once(
    settings: Settings, database_url: str, make_creators: MakeCreators
) -> None:
    (creator,) = await make_creators()
    values = [encode(request_body(creator)) for _ in range(10)]
    await asyncio.gather(*(send_requests(settings, [value]) for value in values))
    async with running_consumer(settings):
        outcomes = await read_outcomes(settings, expect=10)
    statuses = sorted(o.status.value for o in outcomes)
    assert statuses == ["already_published"] * 9 + ["published"]
    assert len({o.published_at for o in outcomes}) == 1
    assert (
        await _count(
            database_url,
            "SELECT count(*) FROM onboarding_events WHERE event_type = 'store.published'",
        )
        == 1
    )


async def test_a_request_that_failed_is_processed_afresh_when_replayed(
    make_settings_with_topics: MakeSettingsWithTopics,
    database_url: str,
    make_creators: MakeCreators,
) -> None:
    """A row lock held past the retry budget fails the request; replayed later, it publishes."""
    (creator,) = await make_creators()
    quick = await make_settings_with_topics(db_lock_timeout_ms=200)
    value = encode(request_body(creator))
    async with running_consumer(quick), stores_locked(database_url, [creator.store_id]) as lock:
        await send_requests(quick, [value])
        failed = outcomes_of(await read_topic(quick, quick.topic_outcomes, expect=1))
        await lock.release()
        await send_requests(quick, [value])
        both = outcomes_of(await read_topic(quick, quick.topic_outcomes, expect=2))
    assert (failed[0].status, failed[0].reason) == (Status.FAILED, Reason.RETRIES_EXHAUSTED)
    assert failed[0].attempts == quick.retry_max_attempts
    later = [o for o in both if o.status is not Status.FAILED]
    assert [o.status for o in later] == [Status.PUBLISHED]
    assert later[0].event_id == failed[0].event_id
    dead = await read_topic(quick, quick.topic_dlq, expect=1)
    assert len(dead) == 1
    assert dead[0].value == value


async def test_a_forged_request_cannot_take_a_genuine_requests_outcome(
    make_settings: MakeSettings, database_url: str, make_creators: MakeCreators
) -> None:
    from ops.runtime.topics import ensure_topics

    signed = make_settings(event_signing_secret="s3cret-for-tests")
    await ensure_topics(signed)
    (creator,) = await make_creators()
    body = request_body(creator)
    value = encode(body)
    # Same event id, forged first: it must neither publish nor poison the idempotency record.
    await send_requests(signed, [value], headers=[("signature", b"sha256=" + b"0" * 64)])
    await send_requests(signed, [value], secret="s3cret-for-tests")
    async with running_consumer(signed):
        outcomes = outcomes_of(await read_topic(signed, signed.topic_outcomes, expect=2))
    by_status = {o.status: o for o in outcomes}
    assert by_status[Status.REJECTED].reason is Reason.BAD_SIGNATURE
    assert by_status[Status.PUBLISHED].request_event_id == uuid.UUID(str(body["event_id"]))
    assert by_status[Status.REJECTED].event_id != by_status[Status.PUBLISHED].event_id
