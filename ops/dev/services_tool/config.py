"""What the services are and where they live, read once from the environment.

A single broker is a cluster of one: every Kafka setting below is per node, and node N of
N > 1 gets numbered paths (`kafka-data-N`, `kafka-N.pid`, `logs/kafka-N/`) while a lone node
keeps the unnumbered ones (`kafka-data`, `kafka.pid`, `logs/`), so a broker started by any
earlier version of this tool is found and adopted.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ops.dev.services_tool.system import ServicesError
from ops.runtime.roles import Role, kafka_username

ROOT = Path(os.path.abspath(__file__)).parents[3]
DEV = ROOT / "ops" / "dev"
HOST = "127.0.0.1"


@dataclass(frozen=True)
class ScramUser:
    """A SCRAM-SHA-512 login on the SASL_SSL listener: one per role (`ops.runtime.roles`),
    whose ACLs `store-publish acl apply` grants."""

    name: str
    role: str


@dataclass(frozen=True)
class Node:
    """One KRaft node (broker and controller): its ports and its files."""

    id: int
    label: str
    port: int
    controller_port: int
    secure_port: int
    data: Path
    conf: Path
    pid_file: Path
    logs: Path

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"


@dataclass(frozen=True)
class Config:
    """Every setting of `ops/dev/services`, with the defaults of the mode chosen."""

    root: Path
    home: Path
    brokers: int
    kafka_port: int
    controller_port: int
    secure_port: int
    pg_port: int
    pg_db: str
    heap_opts: tuple[str, ...]
    secure: bool
    scram_users: tuple[ScramUser, ...]
    ready_timeout: float
    stop_timeout: float
    pg_bin: Path | None
    java_home: Path | None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], root: Path = ROOT) -> Config:
        """The settings `environ` asks for; ServicesError names a value that makes no sense."""

        def number(name: str, default: int) -> int:
            raw = environ.get(name) or str(default)
            try:
                return int(raw)
            except ValueError:
                raise ServicesError(f"{name}={raw} is not a whole number") from None

        brokers = number("KAFKA_BROKERS", 1)
        if brokers < 1:
            raise ServicesError(f"KAFKA_BROKERS={brokers}: at least one broker")
        one = brokers == 1
        # CACHE, the script's first name for it, still wins for the single broker.
        chosen = (environ.get("CACHE") if one else None) or environ.get("SERVICES_HOME")
        home = Path(chosen or (root / ".cache" if one else root / ".cache" / "cluster"))
        kafka_port = number("KAFKA_PORT", 19092 if one else 19292)
        heap = environ.get("KAFKA_HEAP_OPTS") or ("-Xms512m -Xmx1g" if one else "-Xms256m -Xmx512m")
        return cls(
            root=root,
            home=Path(os.path.abspath(home)),
            brokers=brokers,
            kafka_port=kafka_port,
            # One node: its controller and secure listener next to it; N nodes: a block of
            # ten ports each, node N at base + N - 1.
            controller_port=number("KAFKA_CONTROLLER_PORT", kafka_port + (1 if one else 10)),
            secure_port=number("KAFKA_SECURE_PORT", kafka_port + (2 if one else 20)),
            pg_port=number("PG_PORT", 15432 if one else 15632),
            pg_db=environ.get("PG_DB") or "store_publish",
            heap_opts=tuple(shlex.split(heap)),
            secure=environ.get("KAFKA_SECURE", "0") == "1",
            scram_users=tuple(ScramUser(kafka_username(role), role.value) for role in Role),
            ready_timeout=number("READY_TIMEOUT", 120),
            stop_timeout=number("STOP_TIMEOUT", 30),
            pg_bin=Path(environ["PG_BIN"]) if environ.get("PG_BIN") else None,
            java_home=Path(environ["JAVA_HOME"]) if environ.get("JAVA_HOME") else None,
        )

    @property
    def nodes(self) -> tuple[Node, ...]:
        return tuple(self.node(n) for n in range(1, self.brokers + 1))

    def node(self, n: int) -> Node:
        if not 1 <= n <= self.brokers:
            raise ServicesError(f"kafka: no node {n} (nodes 1 to {self.brokers})")
        if self.brokers == 1:
            suffix, label, logs = "", "kafka", self.logs
        else:
            suffix, label, logs = f"-{n}", f"kafka node {n}", self.logs / f"kafka-{n}"
        return Node(
            id=n,
            label=label,
            port=self.kafka_port + n - 1,
            controller_port=self.controller_port + n - 1,
            secure_port=self.secure_port + n - 1,
            data=self.home / f"kafka-data{suffix}",
            conf=self.home / f"kafka-server{suffix}.properties",
            pid_file=self.home / f"kafka{suffix}.pid",
            logs=logs,
        )

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def kafka_libs(self) -> Path:
        """The broker's jars: shared by every SERVICES_HOME, downloaded once."""
        return self.root / ".cache" / "kafka-libs"

    @property
    def secure_dir(self) -> Path:
        return self.home / "kafka-secure"

    @property
    def pg_data(self) -> Path:
        return self.home / "pg-data"

    @property
    def pg_run(self) -> Path:
        return self.home / "pg-run"

    @property
    def pg_log(self) -> Path:
        return self.logs / "postgres.log"

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.address for node in self.nodes)

    @property
    def secure_bootstrap_servers(self) -> str:
        return ",".join(f"{HOST}:{node.secure_port}" for node in self.nodes)

    @property
    def database_url(self) -> str:
        return f"postgresql://postgres@{HOST}:{self.pg_port}/{self.pg_db}"
