"""Fixtures for the real broker and database.

Where they come from, in order: the environment (`KAFKA_BOOTSTRAP_SERVERS`, `DATABASE_URL`);
testcontainers when a Docker engine answers; else `ops/dev/services up` on loopback. Under
`CI=true` a service that cannot be reached fails the run: nothing skips itself.

Each test gets its own topics, consumer group and database (copied from a migrated template),
so tests never depend on each other's state or order.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from ops.db.migrate import migrate_database
from ops.runtime.topics import ensure_topics
from schemas.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_DB = "store_publish_test_template"


def _reachable(host_port: str, timeout: float = 2.0) -> bool:
    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False)
    return probe.returncode == 0


def _services_env() -> dict[str, str]:
    subprocess.run([str(ROOT / "ops" / "services"), "up"], check=True, timeout=900)
    printed = subprocess.run(
        [str(ROOT / "ops" / "services"), "env"], check=True, capture_output=True, text=True
    ).stdout
    return dict(line.split("=", 1) for line in printed.splitlines() if "=" in line)


@pytest.fixture(scope="session")
def services() -> Iterator[dict[str, str]]:
    """KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL of services that answer."""
    found = {
        name: os.environ[name]
        for name in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")
        if os.environ.get(name)
    }
    containers: list[object] = []
    if len(found) < 2 and _docker_answers():
        from testcontainers.kafka import KafkaContainer
        from testcontainers.postgres import PostgresContainer

        kafka = KafkaContainer("apache/kafka:4.4.0").with_kraft()
        postgres = PostgresContainer("postgres:15", driver=None)
        kafka.start()
        postgres.start()
        containers += [kafka, postgres]
        found.setdefault("KAFKA_BOOTSTRAP_SERVERS", kafka.get_bootstrap_server())
        found.setdefault("DATABASE_URL", postgres.get_connection_url())
    elif len(found) < 2:
        local = _services_env()
        for name in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL"):
            found.setdefault(name, local[name])
    broker = found["KAFKA_BOOTSTRAP_SERVERS"].split(",")[0]
    db = urlsplit(found["DATABASE_URL"])
    database = f"{db.hostname}:{db.port or 5432}"
    unreachable = [
        what
        for what, ok in (
            (f"Kafka at {broker}", _reachable(broker)),
            (f"PostgreSQL at {database}", _reachable(database)),
        )
        if not ok
    ]
    if unreachable:
        # Whether or not CI=true: a test run that quietly skips its services tests nothing.
        pytest.fail("unreachable: " + ", ".join(unreachable), pytrace=False)
    yield found
    for container in containers:
        container.stop()  # type: ignore[attr-defined]


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@pytest.fixture(scope="session")
def template_database(services: dict[str, str]) -> str:
    """A database migrated once per session; each test copies it."""

    async def build() -> None:
        admin = await asyncpg.connect(services["DATABASE_URL"])
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
        finally:
            await admin.close()
        await migrate_database(_with_database(services["DATABASE_URL"], TEMPLATE_DB))

    asyncio.run(build())
    return TEMPLATE_DB


@pytest.fixture
async def database_url(services: dict[str, str], template_database: str) -> AsyncIterator[str]:
    """A fresh, migrated database of this test's own."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(services["DATABASE_URL"])
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    finally:
        await admin.close()
    yield _with_database(services["DATABASE_URL"], name)
    admin = await asyncpg.connect(services["DATABASE_URL"])
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def isolated_settings(services: dict[str, str], database_url: str, **overrides: object) -> Settings:
    """Settings with topics and a consumer group that no other test uses."""
    suffix = uuid.uuid4().hex[:10]
    values: dict[str, object] = {
        "kafka_bootstrap_servers": services["KAFKA_BOOTSTRAP_SERVERS"],
        "database_url": database_url,
        "topic_requests": f"t.{suffix}.requested",
        "topic_outcomes": f"t.{suffix}.outcomes",
        "topic_dlq": f"t.{suffix}.dlq",
        "topic_alerts": f"t.{suffix}.alerts",
        "topic_partitions": 3,
        "consumer_group": f"t.{suffix}.group",
        "retry_initial_delay_ms": 10,
        "retry_max_delay_ms": 50,
        "pause_poll_interval_ms": 100,
        "consumer_http_port": 0,
        "stream_http_port": 0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
async def settings(services: dict[str, str], database_url: str) -> Settings:
    """Isolated settings whose topics exist."""
    made = isolated_settings(services, database_url)
    await ensure_topics(made)
    return made
