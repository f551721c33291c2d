"""The whole pipeline with every process as its own role: the scenario the PostgreSQL roles
test (plain broker) and the least-privilege test (authorizing broker, each process also its
own Kafka principal) both run, so the two prove the same thing under different locks.

The stream pauses publishing on failures (auto-rollback), the consumer holds back, on-call
resumes and replays the failed requests, a creator publishes through the gateway: every
store published once, every request with one outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg
from prometheus_client import CollectorRegistry

from ops.runtime.roles import Role
from schemas.events import Status
from schemas.settings import Settings
from streams.app import run_stream
from tests.fixtures.creators import MakeCreators
from tests.fixtures.gateway import JWT_SECRET, MintToken
from tests.helpers.dlq import cli
from tests.helpers.openapi_check import checked_session
from tests.helpers.support import (
    metric_reaches,
    read_outcomes,
    request_publishing,
    running,
    running_consumer,
)

# The settings the scenario needs on top of a test's own (one partition: the stream's
# window sees the failures in order; quick alert rules; a lock wait that fails fast; the
# gateway's token secret and a port of its own).
SCENARIO_SETTINGS: dict[str, object] = {
    "jwt_secret": JWT_SECRET,
    "gateway_http_port": 0,
    "topic_partitions": 1,
    "db_lock_timeout_ms": 50,
    "alert_window_seconds": 20.0,
    "alert_min_events": 10,
    "alert_evaluate_interval_seconds": 0.2,
    "stream_fetch_max_wait_ms": 100,
    "alert_rollback_for_seconds": 0.5,
    "alert_error_rate_for_seconds": 0.5,
}


async def pipeline_under_roles(
    as_role: Callable[[Role], Settings],
    admin: asyncpg.Connection,
    make_creators: MakeCreators,
    start_gateway: Callable[[Settings], Awaitable[str]],
    mint_token: MintToken,
) -> None:
    """Run the scenario; `as_role(role)` is the settings a process of that role runs with
    (upstream sends, analytics reads the outcomes)."""
    doomed = await make_creators(12)
    waiting = await make_creators(15)
    (caller,) = await make_creators(1)
    locker = admin.transaction()
    await locker.start()
    await admin.execute(
        "SELECT 1 FROM stores WHERE id = ANY($1::uuid[]) FOR UPDATE", [c.store_id for c in doomed]
    )
    stream_registry, consumer_registry = CollectorRegistry(), CollectorRegistry()

    async def stream(stop: asyncio.Event, started: asyncio.Event) -> None:
        await run_stream(as_role(Role.STREAM), stop=stop, started=started, registry=stream_registry)

    analytics = as_role(Role.ANALYTICS)
    async with running(stream), running_consumer(as_role(Role.CONSUMER), consumer_registry):
        await request_publishing(as_role(Role.UPSTREAM), doomed, key=b"k")
        failed = await read_outcomes(analytics, expect=12)
        assert {o.status for o in failed} == {Status.FAILED}
        await metric_reaches(consumer_registry, "store_publish_paused", 1)
        await locker.rollback()
        control = await admin.fetchrow("SELECT paused, changed_by FROM publish_control")
        assert control is not None
        assert tuple(control) == (True, "alert:store_publish_auto_rollback")
        await request_publishing(as_role(Role.UPSTREAM), waiting, key=b"k")
        oncall = as_role(Role.ONCALL)
        for args in (("resume",), ("dlq", "replay", "--reason", "retries_exhausted", "--yes")):
            ran = await cli(oncall, *args)
            assert ran.code == 0, (args, ran.err)
        url = await start_gateway(as_role(Role.GATEWAY))
        headers = {"Authorization": f"Bearer {mint_token(caller.user_id)}"}
        async with (
            checked_session() as http,
            http.post(
                url + "/api/store/publish", data=b'{"confirmPublish": true}', headers=headers
            ) as answer,
        ):
            assert (answer.status, (await answer.json())["success"]) == (200, True)
        after = await read_outcomes(analytics, expect=12 + 15 + 12 + 1)
    decided = after[12:]
    assert sorted(o.status for o in decided) == [Status.PUBLISHED] * 28
    assert len({o.request_event_id for o in decided}) == 28
    published = await admin.fetch(
        """SELECT s.id, count(e.*) AS rows FROM stores s
             LEFT JOIN onboarding_events e
               ON e.event_type = 'store.published' AND e.user_id = s.owner_id
            WHERE s.status = 'published' GROUP BY s.id"""
    )
    assert len(published) == 28
    assert all(row["rows"] == 1 for row in published)
