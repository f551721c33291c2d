"""Fault tests stop and start the broker and the database: they get a pair of their own.

A second `ops/dev/services` instance (its own SERVICES_HOME and ports) runs beside the one the
other tests use, so stopping it disturbs no one else.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from ops.db.migrate import migrate_database

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = "store_publish_fault_template"


class OwnServices:
    """Start, stop and inspect the fault tests' own Kafka and PostgreSQL."""

    def __init__(self) -> None:
        self.env = {
            **os.environ,
            "SERVICES_HOME": str(ROOT / ".cache" / "faults"),
            # Below the ephemeral range (32768-60999 on Linux): a client retrying a stopped
            # broker's port from inside that range can connect to itself and take the port.
            "KAFKA_PORT": os.environ.get("FAULT_KAFKA_PORT", "19192"),
            "PG_PORT": os.environ.get("FAULT_PG_PORT", "15532"),
        }

    def run(self, *args: str) -> str:
        done = subprocess.run(
            [str(ROOT / "ops" / "services"), *args],
            env=self.env,
            check=False,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            raise RuntimeError(f"ops/dev/services {' '.join(args)} failed:\n{done.stderr}")
        return done.stdout

    def addresses(self) -> dict[str, str]:
        return dict(line.split("=", 1) for line in self.run("env").splitlines() if "=" in line)


@pytest.fixture(scope="session")
def own_services() -> Iterator[OwnServices]:
    services = OwnServices()
    services.run("up")
    yield services
    services.run("down")


@pytest.fixture(scope="session")
def own_addresses(own_services: OwnServices) -> dict[str, str]:
    addresses = own_services.addresses()
    base = addresses["DATABASE_URL"].rsplit("/", 1)[0]

    async def build() -> None:
        admin = await asyncpg.connect(addresses["DATABASE_URL"])
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{TEMPLATE}"')
        finally:
            await admin.close()
        await migrate_database(f"{base}/{TEMPLATE}")

    asyncio.run(build())
    return {**addresses, "BASE": base}


@pytest.fixture
async def own_database_url(own_addresses: dict[str, str]) -> str:
    name = f"f_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(own_addresses["DATABASE_URL"])
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
    finally:
        await admin.close()
    # Left for the session's `down`: the whole cluster of the fault services goes then.
    return f"{own_addresses['BASE']}/{name}"
