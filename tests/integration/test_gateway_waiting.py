"""Waiting for the pipeline: a retried Idempotency-Key gets the first answer and publishes
once; a wait past GATEWAY_WAIT_MS, a paused pipeline and `Prefer: respond-async` answer 202,
and the poll answers once decided; SIGTERM stops `store-publish gateway` with exit 0."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

import aiohttp
import asyncpg

from ops.dev.processes import CliProcess
from ops.runtime.pause_switch import set_paused
from ops.runtime.topics import ensure_topics
from schemas.settings import Settings
from tests.fixtures.creators import MakeCreators
from tests.fixtures.gateway import CONFIRM, ROUTE, StartFront
from tests.fixtures.processes import StartConsumer
from tests.helpers.openapi_check import checked_session
from tests.helpers.support import free_port


async def published_by(database_url: str, store_id: uuid.UUID) -> tuple[str, uuid.UUID | None, int]:
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(
            "SELECT status, published_by_event_id FROM stores WHERE id = $1", store_id
        )
        events = await conn.fetchval(
            "SELECT count(*) FROM onboarding_events WHERE event_type = 'store.published'"
        )
    finally:
        await conn.close()
    assert row is not None
    return row["status"], row["published_by_event_id"], events


async def test_a_retried_idempotency_key_gets_the_first_answer_and_publishes_once(
    start_front: StartFront, make_creators: MakeCreators, database_url: str
) -> None:
    front = await start_front()
    (creator,) = await make_creators(1)
    first = await front.post(creator, **{"Idempotency-Key": "order-1"})
    again = await front.post(creator, **{"Idempotency-Key": "order-1"})
    other = await front.post(creator, **{"Idempotency-Key": "order-2"})
    assert first[0] == again[0] == 200
    assert first[1] == again[1]
    assert (other[0], other[1]["error"]) == (409, "Store already published")
    status, by, events = await published_by(database_url, creator.store_id)
    assert (status, events) == ("published", 1)
    assert by is not None


async def test_a_wait_past_the_bound_is_202_and_the_poll_answers_once_decided(
    start_front: StartFront, start_consumer: StartConsumer, make_creators: MakeCreators
) -> None:
    # No consumer yet: nothing can be decided.
    front = await start_front(consumer=False, gateway_wait_ms=300)
    (creator,) = await make_creators(1)
    status, body, headers = await front.post(creator)
    location = headers.get("Location")
    assert (status, body["status"]) == (202, "pending")
    assert location == f"{ROUTE}/{body['requestId']}"
    assert (await front.poll(location, creator, wait_s=0))[0] == 202
    (stranger,) = await make_creators(1)
    assert (await front.poll(location, stranger))[0] == 404
    assert (await front.poll(f"{ROUTE}/{uuid.uuid4()}", creator))[0] == 404
    await start_consumer(front.settings)
    decided = await front.poll(location, creator)
    assert decided[0] == 200
    assert decided[1]["success"] is True
    assert (await front.poll(location, stranger))[0] == 404


async def test_while_paused_the_answer_is_202_and_the_poll_answers_after_resume(
    start_front: StartFront,
    start_consumer: StartConsumer,
    make_creators: MakeCreators,
    database_url: str,
) -> None:
    front = await start_front(consumer=False)
    conn = await asyncpg.connect(database_url)
    try:
        await set_paused(conn, paused=True, reason="gateway test", changed_by="test")
        await start_consumer(front.settings)
        (creator,) = await make_creators(1)
        status, body, headers = await front.post(creator)
        location = headers.get("Location")
        assert (status, body["status"]) == (202, "pending")
        assert location is not None
        await asyncio.sleep(1.0)  # well past the consumer's pause poll
        assert (await front.poll(location, creator, wait_s=0))[0] == 202
        await set_paused(conn, paused=False, reason=None, changed_by="test")
        decided = await front.poll(location, creator)
        assert decided[0] == 200
        # With Prefer: respond-async nothing is waited for, even when unpaused.
        (second,) = await make_creators(1)
        status, body, headers = await front.post(second, Prefer="respond-async")
        location = headers.get("Location")
        assert status == 202
        assert location is not None
        assert (await front.poll(location, second))[0] == 200
    finally:
        await conn.close()


async def test_store_publish_gateway_serves_health_and_metrics_and_exits_0_on_sigterm(
    make_gateway_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_gateway_settings(gateway_http_port=free_port())
    await ensure_topics(settings)
    process = CliProcess("gateway", settings, tmp_path / "gateway.log").start()
    base = f"http://127.0.0.1:{settings.gateway_http_port}"
    try:
        async with checked_session() as http:
            for _ in range(300):
                try:
                    async with http.get(base + "/health") as answer:
                        health = answer.status
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"gateway did not answer: {process.log_lines()[-5:]}")
            async with http.get(base + "/metrics") as answer:
                metrics = await answer.text()
            async with http.post(base + ROUTE, data=CONFIRM) as answer:
                unauthorized = answer.status
        assert health == 200
        assert unauthorized == 401
        assert "store_publish_gateway_answers_total" in metrics
        assert await asyncio.to_thread(process.terminate, 30) == 0
    finally:
        process.stop()
    lines = process.log_lines()
    assert all(line.get("service") == "Store Publish" for line in lines)
    assert any(line.get("message") == "Unauthorized" for line in lines)
    assert any(line.get("message") == "Gateway stopped" for line in lines)
