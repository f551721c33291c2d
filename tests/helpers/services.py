"""`ops/dev/services` for the tests, through its Python API (ops.dev.services_tool): the shared
pair, and pairs of their own beside it, each a `Services` on its own SERVICES_HOME and ports."""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from ops.bench.load import database_url as database_named
from ops.db.migrate import migrate_database
from ops.dev.services_tool import Services
from ops.dev.services_tool.cli import run as run_command
from ops.runtime.roles import Role

ROOT = Path(__file__).resolve().parents[2]


def services_on(env: Mapping[str, str]) -> Services:
    """The services `ops/dev/services` would run with the environment `env`."""
    return Services.from_environ(env)


# What would point a pair of services of their own at the shared pair, or change its mode:
# the shared pair's addresses, CACHE (SERVICES_HOME's first name, which wins over it), the
# cluster's and the secure broker's switches.
_SHARED = ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "CACHE", "KAFKA_BROKERS", "KAFKA_SECURE")


def own_services_env(home: str, ports: Mapping[str, str], **mode: str) -> dict[str, str]:
    """This process's environment for services of their own: in .cache/`home`, on `ports`
    (KAFKA_PORT, PG_PORT), in `mode` (KAFKA_BROKERS, KAFKA_SECURE), nothing of the shared
    pair inherited."""
    env = {name: value for name, value in os.environ.items() if name not in _SHARED}
    return {**env, "SERVICES_HOME": str(ROOT / ".cache" / home), **ports, **mode}


async def on_server(server_url: str, *statements: str) -> None:
    """`statements` one after the other on the server of `server_url`, outside a transaction
    (as CREATE and DROP DATABASE must be)."""
    admin = await asyncpg.connect(server_url)
    try:
        for statement in statements:
            await admin.execute(statement)
    finally:
        await admin.close()


async def migrated_template(server_url: str, name: str) -> str:
    """Database `name` on the server of `server_url`, made afresh and migrated: the template
    each test's own database is copied from. Its URL."""
    await on_server(
        server_url,
        f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
        f'CREATE DATABASE "{name}"',
    )
    url = database_named(server_url, name)
    await migrate_database(url)
    return url


async def database_copy(server_url: str, template: str, prefix: str) -> str:
    """A new database on the server of `server_url`, a copy of `template`: its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:16]}"
    await on_server(server_url, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return database_named(server_url, name)


class OwnServices:
    """The fault tests' own Kafka and PostgreSQL: `services` to start, stop and inspect them."""

    def __init__(self) -> None:
        self.env = own_services_env(
            "faults",
            # Below the ephemeral range (32768-60999 on Linux): a client retrying a stopped
            # broker's port from inside that range can connect to itself and take the port.
            {
                "KAFKA_PORT": os.environ.get("FAULT_KAFKA_PORT", "19192"),
                "PG_PORT": os.environ.get("FAULT_PG_PORT", "15532"),
            },
        )
        self.services = services_on(self.env)

    def run(self, *args: str) -> None:
        """`ops/dev/services ARGS` in this process, e.g. `run("kafka-stop", "--kill")`;
        ServicesError if it fails."""
        run_command(args, self.env)

    def addresses(self) -> dict[str, str]:
        return self.services.env()


@dataclass(frozen=True)
class SecureBroker:
    """Where the secure listener is, the CA it trusts, each role's login on it, and the
    PLAINTEXT listener on loopback whose anonymous principal is the super user (ACLs)."""

    bootstrap_servers: str
    admin_bootstrap_servers: str
    cafile: str
    logins: dict[Role, tuple[str, str]]

    def password(self, role: Role) -> str:
        return self.logins[role][1]
