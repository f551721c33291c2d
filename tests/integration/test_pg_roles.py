"""Each process under its own PostgreSQL role (`ops/db/roles.sql`, applied by migrate): what
it needs works through the real code paths, exactly once as before; what it does not need is
refused with the server's authorization error (SQLSTATE 42501) and nothing is written; and
`store-publish status` names a privilege a role lacks.

The test's database is migrated once more first: the session's template may have been made
by a checkout without the roles (the cluster is shared), and a second migrate must change
nothing anyway."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from consumers.ledger import maintain_ledger
from ops.bench.load import database_url as database_named
from ops.db.migrate import migrate_database
from ops.db.roles import NewRole, create_roles_sql
from ops.runtime.pg_roles import DATABASE_ROLES, role_dsn
from ops.runtime.roles import LEDGER_OWNER, Role, pg_role
from ops.runtime.topics import ensure_topics
from schemas.events import Reason, Status
from schemas.settings import Settings
from tests.fixtures.creators import MakeCreators
from tests.fixtures.gateway import MintToken, StartGateway
from tests.fixtures.settings import MakeSettingsWithTopics
from tests.helpers.dlq import Letter, cli, json_lines, produce_dead_letters
from tests.helpers.openapi_check import checked_session
from tests.helpers.role_pipeline import SCENARIO_SETTINGS, pipeline_under_roles
from tests.helpers.support import (
    Creator,
    read_outcomes,
    request_body,
    running_consumer,
    send_requests,
)

Answer = tuple[int, dict[str, object], str | None]


@pytest.fixture
async def roles(database_url: str) -> dict[Role, str]:
    """The DSN of each process's role on this test's (migrated again) database."""
    assert await migrate_database(database_url) == []
    return {role: role_dsn(database_url, role) for role in DATABASE_ROLES}


@pytest.fixture
async def admin(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url)
    try:
        yield conn
    finally:
        await conn.close()


async def test_the_consumer_under_its_role_decides_each_request_once(
    roles: dict[Role, str],
    make_settings_with_topics: MakeSettingsWithTopics,
    make_creators: MakeCreators,
    admin: asyncpg.Connection,
) -> None:
    settings = await make_settings_with_topics(database_url=roles[Role.CONSUMER])
    ready = await make_creators(3)
    gated = await make_creators(2, done=())
    bodies = [request_body(c) for c in [*ready, *gated]]
    registry = CollectorRegistry()
    async with running_consumer(settings, registry):
        await send_requests(settings, bodies)
        outcomes = await read_outcomes(settings, expect=len(bodies))
        # Delivered again: answered from the ledger, nothing published twice.
        await send_requests(settings, bodies[:3])
        again = await read_outcomes(settings, expect=len(bodies) + 3)
        runs = registry.get_sample_value(
            "store_publish_ledger_maintenance_runs_total", {"result": "ok"}
        )
        failed = registry.get_sample_value(
            "store_publish_ledger_maintenance_runs_total", {"result": "failed"}
        )
    assert sorted(o.status for o in outcomes) == sorted([Status.PUBLISHED] * 3 + [Status.GATED] * 2)
    assert {o.request_event_id for o in outcomes} == {uuid.UUID(str(b["event_id"])) for b in bodies}
    first = {o.request_event_id: o for o in outcomes}
    redelivered = Counter(o.request_event_id for o in again)
    assert sorted(redelivered.values()) == [1, 1, 2, 2, 2]
    assert all(o == first[o.request_event_id] for o in again)
    published = await admin.fetch(
        """SELECT s.id, count(e.*) AS rows FROM stores s
             LEFT JOIN onboarding_events e
               ON e.event_type = 'store.published' AND e.user_id = s.owner_id
            WHERE s.status = 'published' GROUP BY s.id"""
    )
    assert sorted(row["id"] for row in published) == sorted(c.store_id for c in ready)
    assert all(row["rows"] == 1 for row in published)
    assert await admin.fetchval("SELECT count(*) FROM publish_requests") == 5
    assert (runs or 0) >= 1
    assert not failed


async def test_the_consumer_maintains_the_ledger_as_its_owner_and_no_further(
    roles: dict[Role, str], make_settings_with_topics: MakeSettingsWithTopics
) -> None:
    settings = await make_settings_with_topics(database_url=roles[Role.CONSUMER])
    conn = await asyncpg.connect(roles[Role.CONSUMER])
    try:
        later = datetime.now(UTC) + timedelta(days=10)
        created, dropped = await maintain_ledger(conn, settings, later)
        assert created
        assert dropped
        owners = await conn.fetch(
            """SELECT DISTINCT pg_get_userbyid(c.relowner) AS owner FROM pg_inherits i
                 JOIN pg_class c ON c.oid = i.inhrelid
                WHERE i.inhparent = 'publish_requests'::regclass"""
        )
        assert [row["owner"] for row in owners] == [LEDGER_OWNER]
        # The owner's role lasted the maintenance's transactions only.
        assert await conn.fetchval("SELECT current_user") == pg_role(Role.CONSUMER)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(f'DROP TABLE "{created[0]}"')
    finally:
        await conn.close()


async def test_the_gateway_under_its_role_publishes_through_the_pipeline(
    roles: dict[Role, str],
    make_gateway_settings: Callable[..., Settings],
    start_gateway: StartGateway,
    make_creators: MakeCreators,
    mint_token: MintToken,
    admin: asyncpg.Connection,
) -> None:
    """Answered while waiting (the caller's store, the switch), and by the poll (the ledger's
    recorded outcome)."""
    gateway = make_gateway_settings(database_url=roles[Role.GATEWAY])
    consumer = gateway.model_copy(update={"database_url": SecretStr(roles[Role.CONSUMER])})
    await ensure_topics(gateway)
    waits, polls = await make_creators(2)
    route = "/api/store/publish"
    async with running_consumer(consumer), checked_session() as http:
        url = await start_gateway(gateway)

        async def call(method: str, path: str, creator: Creator, **headers: str) -> Answer:
            headers["Authorization"] = f"Bearer {mint_token(creator.user_id)}"
            body = b'{"confirmPublish": true}' if method == "POST" else None
            async with http.request(method, url + path, data=body, headers=headers) as answer:
                return answer.status, await answer.json(), answer.headers.get("Location")

        waited = await call("POST", route, waits)
        accepted = await call("POST", route, polls, Prefer="respond-async")
        assert accepted[0] == 202, accepted
        assert accepted[2] is not None
        polled = await call("GET", accepted[2], polls)
        for _ in range(300):
            if polled[0] != 202:
                break
            await asyncio.sleep(0.2)
            polled = await call("GET", accepted[2], polls)
    assert (waited[0], waited[1]["success"]) == (200, True), waited
    assert (polled[0], polled[1]["success"]) == (200, True), polled
    stores = await admin.fetch(
        "SELECT status FROM stores WHERE id = ANY($1::uuid[])", [waits.store_id, polls.store_id]
    )
    assert [row["status"] for row in stores] == ["published", "published"]


async def test_the_whole_pipeline_under_its_roles_rolls_back_resumes_and_replays_once(
    roles: dict[Role, str],
    make_settings_with_topics: MakeSettingsWithTopics,
    start_gateway: StartGateway,
    make_creators: MakeCreators,
    mint_token: MintToken,
    admin: asyncpg.Connection,
) -> None:
    """tests/helpers/role_pipeline.py, each process on the database as its own role."""
    settings = await make_settings_with_topics(**SCENARIO_SETTINGS)

    def as_role(role: Role) -> Settings:
        if role not in roles:  # upstream and analytics never reach the database
            return settings
        return settings.model_copy(update={"database_url": SecretStr(roles[role])})

    await pipeline_under_roles(as_role, admin, make_creators, start_gateway, mint_token)


async def test_on_call_under_its_role_pauses_resumes_replays_and_reads_status(
    roles: dict[Role, str], make_settings_with_topics: MakeSettingsWithTopics
) -> None:
    settings = await make_settings_with_topics(database_url=roles[Role.ONCALL])
    await produce_dead_letters(settings, [Letter(Reason.RETRIES_EXHAUSTED)])
    for args in (
        ("pause", "--reason", "looking"),
        ("resume",),
        ("dlq", "replay", "--reason", "retries_exhausted", "--yes"),
    ):
        ran = await cli(settings, *args)
        assert ran.code == 0, (args, ran.err)
    history = await cli(settings, "dlq", "history", "--json")
    assert history.code == 0, history.err
    assert [(r["selected"], r["sent"]) for r in json_lines(history.out)] == [(1, 1)]
    status = await cli(settings, "status", "--json")
    assert status.code == 0, status.err
    found = json.loads(status.out)
    assert (found["paused"], found["missing_privileges"]) == (False, [])


_STORE_ID = uuid.uuid4()


@pytest.mark.parametrize(
    ("role", "statement"),
    [
        pytest.param(Role.GATEWAY, "ALTER TABLE stores ADD COLUMN hacked int", id="gateway-alter"),
        pytest.param(
            Role.GATEWAY,
            "UPDATE stores SET status = 'published', published_at = now()",
            id="gateway-publishes",
        ),
        pytest.param(Role.GATEWAY, "SELECT email FROM users", id="gateway-reads-emails"),
        pytest.param(Role.GATEWAY, "DELETE FROM publish_requests", id="gateway-deletes-ledger"),
        pytest.param(Role.CONSUMER, "DROP TABLE stores", id="consumer-drops"),
        pytest.param(
            Role.CONSUMER, "ALTER TABLE stores ADD COLUMN hacked int", id="consumer-alter"
        ),
        pytest.param(Role.CONSUMER, "CREATE TABLE hacked (a int)", id="consumer-creates"),
        pytest.param(
            Role.CONSUMER,
            "UPDATE stores SET owner_id = '00000000-0000-0000-0000-000000000000'",
            id="consumer-gives-a-store-away",
        ),
        pytest.param(
            Role.CONSUMER, "UPDATE publish_control SET paused = true", id="consumer-pauses"
        ),
        pytest.param(
            Role.CONSUMER, "DROP TABLE publish_requests_default", id="consumer-drops-a-partition"
        ),
        pytest.param(Role.ONCALL, "UPDATE stores SET status = 'published'", id="oncall-publishes"),
        pytest.param(Role.ONCALL, "SELECT outcome FROM publish_requests", id="oncall-reads-ledger"),
        pytest.param(
            Role.STREAM,
            f"""INSERT INTO publish_requests (event_id, store_id, user_id, status, outcome)
                VALUES ('{_STORE_ID}', '{_STORE_ID}', '{_STORE_ID}', 'published', '{{}}')""",
            id="stream-writes-ledger",
        ),
        pytest.param(Role.STREAM, "DELETE FROM dlq_replays", id="stream-deletes-history"),
    ],
)
async def test_what_a_role_does_not_need_is_refused_and_nothing_is_written(
    roles: dict[Role, str],
    make_creators: MakeCreators,
    admin: asyncpg.Connection,
    role: Role,
    statement: str,
) -> None:
    await make_creators(2)
    before = await _snapshot(admin)
    conn = await asyncpg.connect(roles[role])
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError) as refused:
            await conn.execute(statement)
    finally:
        await conn.close()
    assert refused.value.sqlstate == "42501"
    assert await _snapshot(admin) == before


async def _snapshot(admin: asyncpg.Connection) -> dict[str, object]:
    """What the refused statements would change: rows, columns, tables."""
    return {
        "stores": [tuple(r) for r in await admin.fetch("SELECT * FROM stores ORDER BY id")],
        "control": tuple(await admin.fetchrow("SELECT * FROM publish_control") or ()),
        "ledger": await admin.fetchval("SELECT count(*) FROM publish_requests"),
        "replays": await admin.fetchval("SELECT count(*) FROM dlq_replays"),
        "columns": await admin.fetch(
            """SELECT table_name, column_name FROM information_schema.columns
                WHERE table_schema = 'public' ORDER BY 1, 2"""
        ),
    }


async def test_status_names_a_privilege_a_role_lacks_until_migrate_gives_it_back(
    roles: dict[Role, str],
    make_settings_with_topics: MakeSettingsWithTopics,
    admin: asyncpg.Connection,
    database_url: str,
) -> None:
    settings = await make_settings_with_topics(database_url=roles[Role.ONCALL])
    consumer = pg_role(Role.CONSUMER)
    await admin.execute(f"REVOKE UPDATE (status) ON stores FROM {consumer}")
    await admin.execute(f"REVOKE INSERT ON publish_requests FROM {consumer}")
    said = await cli(settings, "status", "--json")
    assert said.code == 0, said.err
    assert [m["message"] for m in json.loads(said.out)["missing_privileges"]] == [
        f"database: role {consumer} lacks UPDATE (status) on stores",
        f"database: role {consumer} lacks INSERT on publish_requests",
    ]
    shown = await cli(settings, "status")
    assert f"database: role {consumer} lacks UPDATE (status) on stores" in shown.out
    assert await migrate_database(database_url) == []
    again = await cli(settings, "status", "--json")
    assert json.loads(again.out)["missing_privileges"] == []


async def _grants(conn: asyncpg.Connection) -> list[tuple[object, ...]]:
    """Every ACL and owner of the schema's tables, their columns, sequences and the schema."""
    rows = await conn.fetch(
        """SELECT c.relname, pg_get_userbyid(c.relowner), c.relacl::text,
                  (SELECT array_agg(a.attname || '=' || a.attacl::text ORDER BY a.attname)
                     FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attacl IS NOT NULL)
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'S')
           UNION ALL
           SELECT nspname, pg_get_userbyid(nspowner), nspacl::text, NULL
             FROM pg_namespace WHERE nspname = 'public'
            ORDER BY 1"""
    )
    return [tuple(row) for row in rows]


async def test_migrate_again_changes_no_grant(
    roles: dict[Role, str], admin: asyncpg.Connection, database_url: str
) -> None:
    before = await _grants(admin)
    assert await migrate_database(database_url) == []
    assert await _grants(admin) == before


async def test_nothing_is_granted_to_public(
    roles: dict[Role, str], admin: asyncpg.Connection
) -> None:
    public = await admin.fetch(
        """SELECT c.relname, acl::text FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             CROSS JOIN LATERAL unnest(c.relacl) AS acl
            WHERE n.nspname = 'public' AND acl::text LIKE '=%'
           UNION ALL
           SELECT c.relname || '.' || a.attname, acl::text FROM pg_attribute a
             JOIN pg_class c ON c.oid = a.attrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             CROSS JOIN LATERAL unnest(a.attacl) AS acl
            WHERE n.nspname = 'public' AND acl::text LIKE '=%'"""
    )
    assert public == []
    assert not await admin.fetchval("SELECT has_schema_privilege('public', 'public', 'CREATE')")


async def test_two_databases_migrated_at_once_both_get_the_roles(database_url: str) -> None:
    names = [f"t_{uuid.uuid4().hex[:16]}" for _ in range(2)]
    base = await asyncpg.connect(database_url)
    try:
        for name in names:
            await base.execute(f'CREATE DATABASE "{name}"')
        try:
            urls = [database_named(database_url, name) for name in names]
            await asyncio.gather(*(migrate_database(url) for url in urls))
            for url in urls:
                conn = await asyncpg.connect(url)
                try:
                    assert (
                        await conn.fetchval(
                            "SELECT pg_get_userbyid(relowner) FROM pg_class "
                            "WHERE oid = 'publish_requests'::regclass"
                        )
                        == LEDGER_OWNER
                    )
                finally:
                    await conn.close()
        finally:
            for name in names:
                await base.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await base.close()


async def test_a_role_created_meanwhile_by_another_migrate_is_no_error(database_url: str) -> None:
    """Roles are the cluster's: two migrates of two databases may create one at once. The
    second waits for the first and takes its role for its own (a throwaway role here: the
    pipeline's exist already, and other tests use them)."""
    name = f"store_publish_race_{uuid.uuid4().hex[:8]}"
    first, second = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
    try:
        one, two = first.transaction(), second.transaction()
        await one.start()
        await two.start()
        await first.execute(create_roles_sql([NewRole(name, "NOLOGIN")]))
        racing = asyncio.create_task(second.execute(create_roles_sql([NewRole(name, "NOLOGIN")])))
        pid = second.get_server_pid()
        while not await first.fetchval(
            "SELECT EXISTS (SELECT FROM pg_locks WHERE pid = $1 AND NOT granted)", pid
        ):
            assert not racing.done(), "the second creation did not wait for the first"
            await asyncio.sleep(0.05)
        await one.commit()
        await racing
        await two.commit()
        assert await first.fetchval("SELECT count(*) FROM pg_roles WHERE rolname = $1", name) == 1
    finally:
        await first.execute(f"DROP ROLE IF EXISTS {name}")
        await first.close()
        await second.close()


async def test_a_role_that_drifted_from_what_the_code_insists_on_is_brought_back(
    database_url: str,
) -> None:
    """NOLOGIN and NOINHERIT, where the code insists, are restored on a role that exists
    already; what the code does not insist on (a process role's LOGIN) is left to the DBA."""
    names = [f"store_publish_drift_{uuid.uuid4().hex[:8]}" for _ in range(3)]
    conn = await asyncpg.connect(database_url)
    try:
        for name in names:
            await conn.execute(f"CREATE ROLE {name} LOGIN INHERIT")
        await conn.execute(
            create_roles_sql(
                [
                    NewRole(names[0], "NOLOGIN", insisted="NOLOGIN"),
                    NewRole(names[1], "LOGIN NOINHERIT", insisted="NOINHERIT"),
                    NewRole(names[2], "NOLOGIN"),
                ]
            )
        )
        rows = await conn.fetch(
            "SELECT rolname, rolcanlogin, rolinherit FROM pg_roles WHERE rolname = ANY($1)", names
        )
        found = {row["rolname"]: (row["rolcanlogin"], row["rolinherit"]) for row in rows}
        assert found == {
            names[0]: (False, True),
            names[1]: (True, False),
            names[2]: (True, True),
        }
    finally:
        for name in names:
            await conn.execute(f"DROP ROLE IF EXISTS {name}")
        await conn.close()
