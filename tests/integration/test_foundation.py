"""The foundation: migrations, a round trip through the broker, and `ops/dev/services` itself."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer

from ops.db.migrate import MigrationDrift, load_migrations, migrate_database
from schemas.settings import Settings
from tests.helpers.support import producer_for

ROOT = Path(__file__).resolve().parents[2]

CONTRACT_COLUMNS = {
    "users": {"id", "email", "created_at"},
    "onboarding_step_definitions": {
        "id",
        "version",
        "title",
        "description",
        "required",
        "weight",
        "market_rule",
        "role_visibility",
        "active_from",
        "active_to",
    },
    "user_onboarding": {
        "user_id",
        "step_id",
        "version",
        "status",
        "snooze_until",
        "snooze_count",
        "completed_by",
        "completed_at",
        "updated_at",
    },
    "onboarding_events": {
        "id",
        "user_id",
        "event_type",
        "step_id",
        "version",
        "metadata",
        "correlation_id",
        "created_at",
    },
    "stores": {"id", "owner_id", "slug", "status", "store_url", "published_at"},
}


async def test_migrations_apply_twice_cleanly_and_create_every_contract_column(
    services: dict[str, str],
) -> None:
    name = f"m_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(services["DATABASE_URL"])
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = services["DATABASE_URL"].rsplit("/", 1)[0] + "/" + name
    try:
        first = await migrate_database(url)
        second = await migrate_database(url)
        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch(
                """SELECT table_name, column_name FROM information_schema.columns
                    WHERE table_schema = 'public'"""
            )
            applied = await conn.fetchval("SELECT count(*) FROM schema_migrations")
            await conn.execute(
                "UPDATE schema_migrations SET checksum = 'changed' WHERE version = $1",
                first[0],
            )
        finally:
            await conn.close()
        with pytest.raises(MigrationDrift):
            await migrate_database(url)
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()
    assert first == [m.version for m in load_migrations()]
    assert second == []
    assert applied == len(first)
    columns: dict[str, set[str]] = {}
    for row in rows:
        columns.setdefault(row["table_name"], set()).add(row["column_name"])
    for table, wanted in CONTRACT_COLUMNS.items():
        assert wanted <= columns.get(table, set()), f"{table} lacks {wanted - columns[table]}"


async def test_a_record_with_headers_makes_a_round_trip_through_the_broker(
    settings: Settings,
) -> None:
    async with producer_for(settings) as producer:
        await producer.send_and_wait(
            settings.topic_requests,
            value=b"\x00value\xff",
            key=b"key",
            headers=[("h1", b"one"), ("h2", b"")],
        )
    consumer = AIOKafkaConsumer(
        settings.topic_requests,
        **settings.kafka_client_options(),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        record = await consumer.getone()
    finally:
        await consumer.stop()
    assert (record.key, record.value) == (b"key", b"\x00value\xff")
    assert list(record.headers) == [("h1", b"one"), ("h2", b"")]


def _services(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "SERVICES_HOME": str(home),
        "KAFKA_PORT": os.environ.get("PROBE_KAFKA_PORT", "19392"),
        "PG_PORT": os.environ.get("PROBE_PG_PORT", "15632"),
    }
    return subprocess.run(
        [str(ROOT / "ops" / "dev" / "services"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.timeout(600)
def test_services_up_twice_is_harmless_and_down_leaves_nothing_running() -> None:
    home = ROOT / ".cache" / "probe-services"
    try:
        assert _services(home, "up").returncode == 0
        pids = {p.name: p.read_text().strip() for p in home.glob("*.pid")}
        again = _services(home, "up")
        assert again.returncode == 0
        assert {p.name: p.read_text().strip() for p in home.glob("*.pid")} == pids
        assert _services(home, "status").returncode == 0
        printed = _services(home, "env").stdout.splitlines()
        assert [line.split("=", 1)[0] for line in printed] == [
            "KAFKA_BOOTSTRAP_SERVERS",
            "DATABASE_URL",
        ]
    finally:
        down = _services(home, "down")
    assert down.returncode == 0
    assert _services(home, "status").returncode == 3
    running = subprocess.run(
        ["pgrep", "-f", str(home)], capture_output=True, text=True, check=False
    ).stdout.split()
    assert running == []
