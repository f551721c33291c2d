"""The commands on a whole pair (Kafka and PostgreSQL) of one SERVICES_HOME, as functions:
what the command line calls, and what the test fixtures import."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from ops.dev.services_tool import kafka, postgres, secure
from ops.dev.services_tool.config import Config
from ops.dev.services_tool.kafka import NodeState
from ops.dev.services_tool.postgres import PgState
from ops.dev.services_tool.system import locked, log, since


@dataclass(frozen=True)
class Status:
    nodes: list[NodeState]
    postgres: PgState

    @property
    def up(self) -> bool:
        return all(state.running for state in self.nodes) and self.postgres.running


def client_env(config: Config) -> dict[str, str]:
    """What clients need, in the order `env` prints it. The SASL_SSL lines (KAFKA_SECURE=1)
    give each role its own login, `KAFKA_SASL_USERNAME_<ROLE>` and `..._PASSWORD_<ROLE>`, and
    carry no KAFKA_SECURITY_PROTOCOL: exported, they leave KAFKA_BOOTSTRAP_SERVERS plaintext;
    a process runs as a role with its pair as KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD."""
    found = {
        "KAFKA_BOOTSTRAP_SERVERS": config.bootstrap_servers,
        "DATABASE_URL": config.database_url,
    }
    if config.secure:
        found |= {
            "KAFKA_SECURE_BOOTSTRAP_SERVERS": config.secure_bootstrap_servers,
            "KAFKA_SASL_MECHANISM": secure.MECHANISM,
            "KAFKA_SSL_CAFILE": str(secure.cafile(config)),
        }
        for user in config.scram_users:
            role = user.role.upper()
            found[f"KAFKA_SASL_USERNAME_{role}"] = user.name
            found[f"KAFKA_SASL_PASSWORD_{role}"] = secure.password(config, user)
    return found


class Services:
    """Kafka and PostgreSQL of one SERVICES_HOME. Each method takes the home's lock, so
    parallel test sessions and shells never race; a failure is a ServicesError."""

    def __init__(self, config: Config) -> None:
        self.config = config

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Services:
        return cls(Config.from_environ(environ))

    def up(self) -> None:
        """Both, idempotent: ready once a transaction commits and the database answers."""
        started = time.monotonic()
        with locked(self.config.home):
            # PostgreSQL first: it is quick, and starts while the JVMs would compete anyway.
            postgres.start(self.config)
            kafka.start(self.config)
        log(f"up: Kafka and PostgreSQL ready in {since(started)}")

    def down(self) -> None:
        with locked(self.config.home):
            kafka.stop(self.config)
            postgres.stop(self.config)

    def kafka_start(self, node: int | None = None) -> None:
        with locked(self.config.home):
            kafka.start(self.config, node)

    def kafka_stop(self, node: int | None = None, *, kill: bool = False) -> None:
        with locked(self.config.home):
            kafka.stop(self.config, node, kill=kill)

    def pg_start(self) -> None:
        with locked(self.config.home):
            postgres.start(self.config)

    def pg_stop(self, *, kill: bool = False) -> None:
        with locked(self.config.home):
            postgres.stop(self.config, kill=kill)

    def status(self) -> Status:
        return Status(kafka.status(self.config), postgres.status(self.config))

    def env(self) -> dict[str, str]:
        return client_env(self.config)
