"""The consumer against the real broker and database: each contract status and reason."""

from __future__ import annotations

import json
import uuid

import asyncpg

from schemas.dead_letter import DLQ_HEADER_NAMES, DeadLetterHeaders
from schemas.events import Reason, Status, outcome_event_id
from schemas.settings import Settings
from tests.fixtures.settings import MakeSettings
from tests.helpers.support import (
    encode,
    outcomes_by_request,
    read_topic,
    request_body,
    running_consumer,
    seed_creator,
    seed_steps,
    send_requests,
)


async def test_every_business_status_and_reason_reaches_the_outcome_topic(
    settings: Settings, database_url: str
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await seed_steps(conn, ("payments",))
        ready = await seed_creator(conn)
        no_payments = await seed_creator(conn, done=())
        skipped = await seed_creator(conn, done=(), skipped=("payments",))
        published = await seed_creator(conn, published=True)
        owner = await seed_creator(conn)
        intruder = await seed_creator(conn)
    finally:
        await conn.close()
    cases = {
        "published": request_body(ready, notify_customers=True, correlation_id="corr-ready"),
        "gated": request_body(no_payments),
        "gated_skipped": request_body(skipped),
        "already": request_body(published),
        "not_confirmed": request_body(ready, confirm=False),
        "user_not_found": request_body(user_id=uuid.uuid4(), store_id=ready.store_id),
        "store_not_found": request_body(user_id=ready.user_id, store_id=uuid.uuid4()),
        "forbidden": request_body(user_id=intruder.user_id, store_id=owner.store_id),
    }
    await send_requests(settings, cases.values())
    async with running_consumer(settings):
        outcomes = await outcomes_by_request(settings, len(cases))

    def outcome(name: str) -> tuple[Status, Reason | None]:
        found = outcomes[uuid.UUID(str(cases[name]["event_id"]))]
        return found.status, found.reason

    assert outcome("published") == (Status.PUBLISHED, None)
    assert outcome("gated") == (Status.GATED, Reason.MISSING_STEPS)
    assert outcome("gated_skipped") == (Status.GATED, Reason.MISSING_STEPS)
    assert outcome("already") == (Status.ALREADY_PUBLISHED, None)
    assert outcome("not_confirmed") == (Status.REJECTED, Reason.NOT_CONFIRMED)
    assert outcome("user_not_found") == (Status.REJECTED, Reason.USER_NOT_FOUND)
    assert outcome("store_not_found") == (Status.REJECTED, Reason.STORE_NOT_FOUND)
    assert outcome("forbidden") == (Status.REJECTED, Reason.FORBIDDEN)

    first = outcomes[uuid.UUID(str(cases["published"]["event_id"]))]
    assert first.event_id == outcome_event_id(str(cases["published"]["event_id"]))
    assert first.correlation_id == "corr-ready"
    assert first.notify_customers is True
    assert first.store_url == f"https://shops.example.com/shop-{ready.store_id.hex[:12]}"
    assert first.published_at is not None
    assert first.attempts == 1
    gated = outcomes[uuid.UUID(str(cases["gated"]["event_id"]))]
    assert gated.missing_steps == ["payments"]
    assert gated.correlation_id == cases["gated"]["event_id"]  # event_id stands in

    conn = await asyncpg.connect(database_url)
    try:
        stores = {r["id"]: r["status"] for r in await conn.fetch("SELECT id, status FROM stores")}
        events = await conn.fetch(
            "SELECT event_type, step_id, metadata, correlation_id FROM onboarding_events"
        )
    finally:
        await conn.close()
    assert stores[ready.store_id] == "published"
    assert stores[no_payments.store_id] == "draft"
    assert stores[owner.store_id] == "draft"
    published_rows = [e for e in events if e["event_type"] == "store.published"]
    assert [e["correlation_id"] for e in published_rows] == ["corr-ready"]
    blocked = [e for e in events if e["event_type"] == "gating.blocked"]
    assert len(blocked) == 2
    assert all(e["step_id"] == "payments" for e in blocked)
    meta = json.loads(blocked[0]["metadata"])
    assert meta["action"] == "store.publish"
    assert meta["isCritical"] is True

    dead = await read_topic(settings, settings.topic_dlq, expect=4)
    reasons = sorted(DeadLetterHeaders.from_kafka(list(r.headers)).reason.value for r in dead)
    assert reasons == ["forbidden", "not_confirmed", "store_not_found", "user_not_found"]


async def test_every_missing_step_is_listed_and_a_step_without_active_definition_blocks(
    make_settings: MakeSettings, database_url: str
) -> None:
    settings = make_settings(publish_required_steps="payments,theme,email_verification")
    from ops.runtime.topics import ensure_topics

    await ensure_topics(settings)
    conn = await asyncpg.connect(database_url)
    try:
        # email_verification has no definition at all; theme's only version has expired.
        await seed_steps(conn, ("payments",))
        await conn.execute(
            """INSERT INTO onboarding_step_definitions (id, version, title, active_to)
               VALUES ('theme', 1, 'Theme', now() - interval '1 day')"""
        )
        creator = await seed_creator(conn, done=("payments", "theme"))
    finally:
        await conn.close()
    body = request_body(creator)
    await send_requests(settings, [body])
    async with running_consumer(settings):
        outcomes = await outcomes_by_request(settings, 1)
    outcome = outcomes[uuid.UUID(str(body["event_id"]))]
    assert outcome.status is Status.GATED
    assert outcome.missing_steps == ["theme", "email_verification"]


async def test_dead_letter_keeps_key_value_and_headers_and_adds_the_contract_headers(
    settings: Settings, database_url: str
) -> None:
    body = request_body(user_id=uuid.uuid4(), store_id=uuid.uuid4(), correlation_id="dl-1")
    value = encode(body)
    await send_requests(settings, [value], key=b"the-key", headers=[("origin", b"shop-api")])
    async with running_consumer(settings):
        await outcomes_by_request(settings, 1)
    (record,) = await read_topic(settings, settings.topic_dlq, expect=1)
    assert record.key == b"the-key"
    assert record.value == value
    headers = list(record.headers)
    assert ("origin", b"shop-api") in headers
    added = DeadLetterHeaders.from_kafka(headers)
    assert added.reason is Reason.USER_NOT_FOUND
    assert added.source_topic == settings.topic_requests
    assert added.correlation_id == "dl-1"
    assert added.attempts == 1
    names = {name for name, _ in headers}
    assert set(DLQ_HEADER_NAMES) <= names
