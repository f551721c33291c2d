"""A row lock held on one store for longer than the retry budget."""

from __future__ import annotations

from schemas.dead_letter import DeadLetterHeaders
from schemas.events import Reason, Status
from tests.fixtures.creators import MakeCreators
from tests.fixtures.settings import MakeSettingsWithTopics
from tests.helpers.locks import stores_locked
from tests.helpers.support import (
    encode,
    read_outcomes,
    read_topic,
    request_body,
    running_consumer,
    send_requests,
)


async def test_a_store_locked_past_the_retry_budget_fails_alone_and_holds_up_no_one_beyond_it(
    make_settings_with_topics: MakeSettingsWithTopics,
    database_url: str,
    make_creators: MakeCreators,
) -> None:
    settings = await make_settings_with_topics(
        topic_partitions=1,
        db_lock_timeout_ms=300,
        retry_initial_delay_ms=100,
        retry_max_delay_ms=400,
    )
    creators = await make_creators(40)
    stuck = creators[17]
    values = [encode(request_body(c, correlation_id=f"c{i}")) for i, c in enumerate(creators)]
    async with stores_locked(database_url, [stuck.store_id]):
        await send_requests(settings, values, key=b"one-partition")
        async with running_consumer(settings):
            outcomes = await read_outcomes(settings, expect=len(values))

    by_store = {o.store_id: o for o in outcomes}
    failed = by_store[stuck.store_id]
    assert (failed.status, failed.reason) == (Status.FAILED, Reason.RETRIES_EXHAUSTED)
    assert failed.attempts == settings.retry_max_attempts
    others = [o for o in outcomes if o.store_id != stuck.store_id]
    assert [o.status for o in others] == [Status.PUBLISHED] * (len(values) - 1)
    # The budget: every attempt waiting out the lock timeout, and the backoff between them.
    budget_ms = settings.retry_max_attempts * settings.db_lock_timeout_ms + sum(
        min(settings.retry_initial_delay_ms * 2**i, settings.retry_max_delay_ms)
        for i in range(settings.retry_max_attempts - 1)
    )
    slowest = max(o.processing_ms for o in others)
    print(f"\nretry budget {budget_ms} ms; slowest other request {slowest:.0f} ms")
    assert slowest < budget_ms + 2_000
    (dead,) = await read_topic(settings, settings.topic_dlq, expect=1)
    headers = DeadLetterHeaders.from_kafka(list(dead.headers))
    assert headers.reason is Reason.RETRIES_EXHAUSTED
    assert "LockNotAvailable" in headers.error
    assert headers.correlation_id == "c17"
