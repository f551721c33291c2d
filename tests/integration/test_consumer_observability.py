"""The consumer's /metrics and /health over HTTP, with the counters the alert rules read."""

from __future__ import annotations

import asyncio
import json
import urllib.request
import uuid

import asyncpg

from tests.fixtures.settings import MakeSettingsWithTopics
from tests.helpers.support import (
    free_port,
    outcomes_by_request,
    request_body,
    running_consumer,
    seed_creator,
    seed_steps,
    send_requests,
)


def _get(port: int, path: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
        return answer.status, answer.read()


def _sample(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not exposed")


async def test_metrics_count_outcomes_dead_letters_and_gating_blocks_by_step(
    make_settings_with_topics: MakeSettingsWithTopics, database_url: str
) -> None:
    port = free_port()
    settings = await make_settings_with_topics(consumer_http_port=port)
    conn = await asyncpg.connect(database_url)
    try:
        await seed_steps(conn)
        ready, blocked = await seed_creator(conn), await seed_creator(conn, done=())
    finally:
        await conn.close()
    bodies = [
        request_body(ready),
        request_body(blocked),
        request_body(user_id=uuid.uuid4(), store_id=ready.store_id),
    ]
    await send_requests(settings, bodies)
    async with running_consumer(settings):
        await outcomes_by_request(settings, len(bodies))
        await asyncio.sleep(0.5)
        status, body = await asyncio.to_thread(_get, port, "/health")
        _, raw = await asyncio.to_thread(_get, port, "/metrics")
    health = json.loads(body)
    metrics = raw.decode()
    assert status == 200
    assert health["database"] == "available"
    assert health["paused"] is False
    assert _sample(metrics, 'store_publish_outcomes_total{reason="",status="published"}') == 1
    assert (
        _sample(metrics, 'store_publish_outcomes_total{reason="missing_steps",status="gated"}') == 1
    )
    assert _sample(metrics, 'store_publish_dead_letters_total{reason="user_not_found"}') == 1
    assert _sample(metrics, 'store_publish_gating_blocks_total{step="payments"}') == 1
    assert _sample(metrics, "store_publish_paused") == 0
    assert _sample(metrics, "store_publish_database_available") == 1
    assert _sample(metrics, "store_publish_end_to_end_latency_seconds_count") == 3
