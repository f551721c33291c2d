"""A broken database pauses publishing instead of failing requests: a column renamed, an INSERT
privilege revoked, the consumer's role made read-only, a bug in our own batch path. Each
fault is laid on the real database while requests flow, then taken away. The accounting: no
outcome while it lasts, then every request answered exactly once, none failed, nothing
dead-lettered, every store published once; and the metric names the SQLSTATE."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

import consumers.effects
from consumers.effects import Effects
from schemas.events import PublishOutcome, Status
from schemas.settings import Settings
from tests.fixtures.creators import MakeCreators
from tests.fixtures.settings import MakeSettingsWithTopics
from tests.helpers.cli import store_publish
from tests.helpers.support import (
    encode,
    metric_reaches,
    read_outcomes,
    read_topic,
    request_body,
    running_consumer,
    send_requests,
)

PUBLISHABLE, GATED = 12, 6
FAULT_SECONDS = 3.0

Fault = Callable[[asyncpg.Connection, str], Awaitable[None]]


@dataclass(frozen=True)
class Role:
    """A login role without superuser rights, as the consumer has in production: privileges
    and role settings apply to it."""

    name: str
    dsn: str


@pytest.fixture
async def consumer_role(database_url: str) -> AsyncIterator[Role]:
    name = f"consumer_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f"CREATE ROLE {name} LOGIN")
        await conn.execute(
            f"""GRANT USAGE ON SCHEMA public TO {name};
                GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {name};
                GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {name};"""
        )
    finally:
        await conn.close()
    parts = urlsplit(database_url)
    host = parts.netloc.rpartition("@")[2]
    yield Role(name, urlunsplit(parts._replace(netloc=f"{name}@{host}")))
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            f"""SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{name}'"""
        )
        await conn.execute(f"DROP OWNED BY {name}")
        await conn.execute(f"DROP ROLE {name}")
    finally:
        await conn.close()


@asynccontextmanager
async def consumer_with_metrics(
    settings: Settings, warm_up: bytes
) -> AsyncIterator[CollectorRegistry]:
    """The consumer in this process, once it has decided `warm_up`: its partitions are
    claimed, so the fault meets the batches, not the claims."""
    registry = CollectorRegistry()
    async with running_consumer(settings, registry):
        await send_requests(settings, [warm_up])
        assert len(await read_topic(settings, settings.topic_outcomes, expect=1)) == 1
        yield registry


@dataclass(frozen=True)
class Population:
    """One request by each of PUBLISHABLE ready and GATED blocked creators, and one more by
    a creator of its own to warm the consumer up with."""

    requests: list[bytes]
    warm_up: bytes


@pytest.fixture
async def population(make_creators: MakeCreators) -> Population:
    ready = await make_creators(PUBLISHABLE)
    blocked = await make_creators(GATED, done=())
    (first,) = await make_creators(1)
    return Population(
        [encode(request_body(c)) for c in [*ready, *blocked]], encode(request_body(first))
    )


async def held(
    settings: Settings, registry: CollectorRegistry, requests: list[bytes], sqlstate: str
) -> None:
    """Send `requests` while the fault lasts: once the consumer has counted the fault
    (`sqlstate`), FAULT_SECONDS without an outcome past the warm-up's."""
    await send_requests(settings, requests)
    await metric_reaches(
        registry, "store_publish_database_faults_total", 1, {"sqlstate": sqlstate}, at_least=True
    )
    during = await read_topic(
        settings, settings.topic_outcomes, expect=len(requests) + 1, wait_s=FAULT_SECONDS
    )
    assert len(during) == 1, f"requests were answered while the fault ({sqlstate}) lasted"


async def _terminate_sessions(admin: asyncpg.Connection, role: str) -> None:
    await admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role
    )


async def _rename_column(admin: asyncpg.Connection, role: str) -> None:
    await admin.execute("ALTER TABLE onboarding_events RENAME COLUMN metadata TO metadata_old")


async def _rename_column_back(admin: asyncpg.Connection, role: str) -> None:
    await admin.execute("ALTER TABLE onboarding_events RENAME COLUMN metadata_old TO metadata")


async def _revoke_insert(admin: asyncpg.Connection, role: str) -> None:
    await admin.execute(f"REVOKE INSERT ON publish_requests FROM {role}")


async def _grant_insert(admin: asyncpg.Connection, role: str) -> None:
    await admin.execute(f"GRANT INSERT ON publish_requests TO {role}")


async def _read_only(admin: asyncpg.Connection, role: str) -> None:
    # As after a failover onto a standby: new sessions cannot write. The consumer's
    # sessions are cut so that it reconnects into the read-only ones.
    await admin.execute(f"ALTER ROLE {role} SET default_transaction_read_only = on")
    await _terminate_sessions(admin, role)


async def _read_write(admin: asyncpg.Connection, role: str) -> None:
    await admin.execute(f"ALTER ROLE {role} RESET default_transaction_read_only")


@pytest.mark.parametrize(
    ("lay", "lift", "sqlstate"),
    [
        pytest.param(_rename_column, _rename_column_back, "42703", id="column-renamed"),
        pytest.param(_revoke_insert, _grant_insert, "42501", id="insert-revoked"),
        pytest.param(_read_only, _read_write, "25006", id="read-only"),
    ],
)
async def test_a_database_fault_pauses_publishing_and_fails_no_request(
    make_settings_with_topics: MakeSettingsWithTopics,
    population: Population,
    consumer_role: Role,
    database_url: str,
    lay: Fault,
    lift: Fault,
    sqlstate: str,
) -> None:
    settings = await make_settings_with_topics(
        database_url=consumer_role.dsn, db_outage_max_backoff_ms=500
    )
    values = population.requests
    admin = await asyncpg.connect(database_url)
    try:
        async with consumer_with_metrics(settings, population.warm_up) as registry:
            await lay(admin, consumer_role.name)
            await held(settings, registry, values, sqlstate)
            assert registry.get_sample_value("store_publish_database_available") == 0
            if sqlstate != "25006":  # a read-only database cannot take the consumer's report
                said = await _status_of_consumers(settings)
                assert [(c["state"], c["sqlstate"]) for c in said] == [("database_fault", sqlstate)]
            await lift(admin, consumer_role.name)
            outcomes = await read_outcomes(settings, expect=len(values) + 1)
            assert registry.get_sample_value("store_publish_database_available") == 1
        await _account(settings, admin, outcomes[1:], len(values), warmed_up=1)
    finally:
        await admin.close()


async def test_a_bug_in_the_batch_path_pauses_publishing_and_fails_no_request(
    settings: Settings,
    population: Population,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = consumers.effects.effects_of
    broken = asyncio.Event()

    def effects_of(*args: Any, **kwargs: Any) -> Effects:
        if broken.is_set():
            raise TypeError("a bug in building the effects")
        return real(*args, **kwargs)

    monkeypatch.setattr("consumers.decide_in_db.effects_of", effects_of)
    values = population.requests
    admin = await asyncpg.connect(database_url)
    try:
        async with consumer_with_metrics(settings, population.warm_up) as registry:
            broken.set()
            # A bug is counted as a fault with no SQLSTATE.
            await held(settings, registry, values, "none")
            broken.clear()
            outcomes = await read_outcomes(settings, expect=len(values) + 1)
        await _account(settings, admin, outcomes[1:], len(values), warmed_up=1)
    finally:
        await admin.close()


async def _status_of_consumers(settings: Settings) -> list[dict[str, object]]:
    """What `store-publish status --json` says of the consumers, run as an operator would."""
    ran = await asyncio.to_thread(store_publish, settings, "status", "--json")
    assert ran.code == 0, ran.err
    consumers = json.loads(ran.out)["consumers"]
    assert isinstance(consumers, list)
    return consumers


async def _account(
    settings: Settings,
    admin: asyncpg.Connection,
    outcomes: Sequence[PublishOutcome],
    sent: int,
    *,
    warmed_up: int,
) -> None:
    """Every request answered once, none failed, nothing dead-lettered, each store once."""
    decided = list(outcomes)
    assert len(decided) == sent
    assert len({o.request_event_id for o in decided}) == sent
    statuses = sorted(o.status.value for o in decided)
    assert statuses == sorted([Status.PUBLISHED.value] * PUBLISHABLE + [Status.GATED.value] * GATED)
    assert await read_topic(settings, settings.topic_dlq, expect=0, wait_s=1.0) == []
    published = await admin.fetch(
        """SELECT s.id, count(e.*) AS rows
             FROM stores s LEFT JOIN onboarding_events e
               ON e.event_type = 'store.published' AND e.user_id = s.owner_id
            WHERE s.status = 'published' GROUP BY s.id"""
    )
    assert len(published) == PUBLISHABLE + warmed_up
    assert all(row["rows"] == 1 for row in published), "a store was published twice"
    gated_rows = await admin.fetchval(
        "SELECT count(*) FROM onboarding_events WHERE event_type = 'gating.blocked'"
    )
    assert gated_rows == GATED
