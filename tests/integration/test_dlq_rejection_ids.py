"""A request refused for its shape still names itself: its sender can join the outcome to it."""

from __future__ import annotations

import uuid

from ops.runtime.topics import ensure_topics
from schemas.dead_letter import DeadLetterHeaders
from schemas.events import PublishOutcome, Reason, Status
from schemas.settings import Settings
from tests.helpers.support import (
    outcomes_of,
    read_topic,
    request_body,
    running_consumer,
    send_requests,
)


async def test_invalid_requests_outcomes_and_dead_letters_carry_the_ids_they_name(
    settings: Settings,
) -> None:
    await ensure_topics(settings)
    changes: list[dict[str, object]] = [
        {"admin": True},
        {"confirm_publish": "yes"},
        {"schema_version": 2},
        {"occurred_at": "2026-01-31T12:00:00"},
    ]
    bodies = [
        request_body(correlation_id=f"upstream-{n}", notify_customers=True, **change)
        for n, change in enumerate(changes)
    ]
    unreadable = b'{"event_id": '
    await send_requests(settings, [*bodies, unreadable])

    async with running_consumer(settings):
        records = await read_topic(settings, settings.topic_outcomes, expect=len(bodies) + 1)
        letters = await read_topic(settings, settings.topic_dlq, expect=len(bodies) + 1)
    outcomes = outcomes_of(records)
    by_correlation: dict[str, PublishOutcome] = {o.correlation_id: o for o in outcomes}
    assert len(outcomes) == len(bodies) + 1
    for n, body in enumerate(bodies):
        outcome = by_correlation[f"upstream-{n}"]
        assert (outcome.status, outcome.reason) == (Status.REJECTED, Reason.INVALID_PAYLOAD)
        assert outcome.request_event_id == uuid.UUID(str(body["event_id"]))
        assert outcome.user_id == uuid.UUID(str(body["user_id"]))
        assert outcome.store_id == uuid.UUID(str(body["store_id"]))
        assert outcome.notify_customers is True
        assert outcome.event_id != outcome.request_event_id
    nameless = [o for o in outcomes if o.request_event_id is None]
    assert len(nameless) == 1
    assert nameless[0].correlation_id.startswith(f"{settings.topic_requests}:")
    dead_correlations = {
        DeadLetterHeaders.from_kafka(list(r.headers)).correlation_id for r in letters
    }
    assert dead_correlations == {o.correlation_id for o in outcomes}
