"""The idempotency ledger bounded: partitions past the retention dropped, what is within it
still answered byte for byte, and a request decided again after its record is gone safe."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from consumers.ledger import maintain_ledger, partition_name
from schemas.events import PublishOutcome, Status
from schemas.settings import Settings
from tests.fixtures.creators import MakeCreators
from tests.helpers.support import (
    encode,
    fetch,
    outcomes_of,
    read_outcomes,
    read_topic,
    request_body,
    running_consumer,
)
from tests.helpers.support import send_requests as send

STORES = "SELECT id, status, published_at, published_by_event_id FROM stores ORDER BY id"


def _past_the_retention(settings: Settings) -> datetime:
    """A `now` at which today's partition is wholly past the retention: today's requests'
    records go with it."""
    return datetime.now(UTC) + settings.idempotency_retention + timedelta(days=1)


async def _recorded(database_url: str, event_ids: list[uuid.UUID]) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM publish_requests WHERE event_id = ANY($1::uuid[])",
                event_ids,
            )
        )
    finally:
        await conn.close()


async def _analytics(database_url: str) -> list[tuple[str, str, str | None]]:
    rows = await fetch(
        database_url,
        "SELECT event_type, metadata, step_id FROM onboarding_events ORDER BY 1, 2::text",
    )
    return [
        (row["event_type"], json.loads(row["metadata"])["requestEventId"], row["step_id"])
        for row in rows
    ]


def _in_order(outcomes: list[PublishOutcome], values: list[bytes]) -> list[PublishOutcome]:
    """The outcomes in the order of the requests sent (two partitions give no order)."""
    order = [uuid.UUID(str(json.loads(value)["event_id"])) for value in values]
    return sorted(outcomes, key=lambda o: order.index(o.request_event_id))


async def test_partitions_past_the_retention_go_while_new_requests_keep_their_idempotency(
    settings: Settings, database_url: str, make_creators: MakeCreators
) -> None:
    first, second = await make_creators(2)
    old = request_body(first)
    async with running_consumer(settings):
        await send(settings, [encode(old)])
        await read_topic(settings, settings.topic_outcomes, expect=1)
    old_id = uuid.UUID(str(old["event_id"]))
    assert await _recorded(database_url, [old_id]) == 1

    conn = await asyncpg.connect(database_url)
    try:
        created, dropped = await maintain_ledger(conn, settings, _past_the_retention(settings))
        again = await maintain_ledger(conn, settings, _past_the_retention(settings))
    finally:
        await conn.close()
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    assert partition_name(today) in dropped
    assert len(created) == 3
    assert again == ([], [])  # idempotent
    assert await _recorded(database_url, [old_id]) == 0

    # Decided after the drop: recorded (in the default partition, no partition covering
    # today any more), and a redelivery gets the recorded outcome.
    new = encode(request_body(second))
    async with running_consumer(settings):
        await send(settings, [new])
        await read_topic(settings, settings.topic_outcomes, expect=2)
        await send(settings, [new])
        records = await read_topic(settings, settings.topic_outcomes, expect=3)
    new_id = uuid.UUID(str(json.loads(new)["event_id"]))
    mine = [r.value for r in records if outcomes_of([r])[0].request_event_id == new_id]
    assert len(mine) == 2
    assert mine[0] == mine[1]
    assert PublishOutcome.model_validate_json(mine[0] or b"").status is Status.PUBLISHED
    assert await _recorded(database_url, [new_id]) == 1


async def test_a_redelivery_within_the_retention_gets_the_recorded_outcome_byte_for_byte(
    settings: Settings, database_url: str, make_creators: MakeCreators
) -> None:
    (published,) = await make_creators(1)
    (gated,) = await make_creators(1, done=())
    values = [encode(request_body(published)), encode(request_body(gated))]
    async with running_consumer(settings):
        await send(settings, values)
        first = await read_topic(settings, settings.topic_outcomes, expect=2)
        # Maintenance at its own time drops nothing a redelivery needs.
        conn = await asyncpg.connect(database_url)
        try:
            assert (await maintain_ledger(conn, settings))[1] == []
        finally:
            await conn.close()
        await send(settings, values)
        every = await read_topic(settings, settings.topic_outcomes, expect=4)
    by_request: dict[uuid.UUID, list[bytes | None]] = {}
    for record in every:
        by_request.setdefault(outcomes_of([record])[0].request_event_id, []).append(record.value)
    assert sorted(o.status.value for o in outcomes_of(first)) == ["gated", "published"]
    assert len(by_request) == 2
    assert all(len(sent) == 2 and sent[0] == sent[1] for sent in by_request.values())


async def test_an_old_request_replayed_after_its_record_is_gone_repeats_no_side_effect(
    settings: Settings, database_url: str, make_creators: MakeCreators
) -> None:
    """An old dead letter replayed (its original bytes sent again, as `dlq replay` does) once
    its partition of the ledger was dropped: decided afresh, it publishes nothing twice and
    writes no second analytics row."""
    (published,) = await make_creators(1)
    (gated,) = await make_creators(1, done=())
    values = [encode(request_body(published)), encode(request_body(gated))]
    async with running_consumer(settings):
        await send(settings, values)
        first = _in_order(await read_outcomes(settings, expect=2), values)
    analytics_before = await _analytics(database_url)
    conn = await asyncpg.connect(database_url)
    try:
        stores_before = await conn.fetch(STORES)
        await maintain_ledger(conn, settings, _past_the_retention(settings))
    finally:
        await conn.close()
    ids = [o.request_event_id for o in first]
    assert await _recorded(database_url, ids) == 0

    async with running_consumer(settings):
        await send(settings, values)
        every = await read_outcomes(settings, expect=4)
    later = _in_order([o for o in every if o not in first], values)
    assert [o.status for o in first] == [Status.PUBLISHED, Status.GATED]
    assert [o.status for o in later] == [Status.ALREADY_PUBLISHED, Status.GATED]
    assert later[0].published_at == first[0].published_at
    assert await fetch(database_url, STORES) == stores_before
    analytics_after = await _analytics(database_url)
    assert analytics_after == analytics_before
    assert sorted(kind for kind, _, _ in analytics_after) == ["gating.blocked", "store.published"]
    # Decided again, they are recorded again.
    assert await _recorded(database_url, ids) == 2
