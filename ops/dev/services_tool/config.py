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


class Config:
    """Every setting of `ops/dev/services`, with the defaults of the mode chosen, and the
    paths and addresses that follow from them. A ServicesError names a value that makes no
    sense."""

    def __init__(self, environ: Mapping[str, str], root: Path = ROOT) -> None:
        def number(name: str, default: int) -> int:
            raw = environ.get(name) or str(default)
            try:
                return int(raw)
            except ValueError:
                raise ServicesError(f"{name}={raw} is not a whole number") from None

        self.brokers = number("KAFKA_BROKERS", 1)
        if self.brokers < 1:
            raise ServicesError(f"KAFKA_BROKERS={self.brokers}: at least one broker")
        one = self.brokers == 1
        self.root = root
        # CACHE, the script's first name for it, still wins for the single broker.
        home = (environ.get("CACHE") if one else None) or environ.get("SERVICES_HOME")
        default = root / ".cache" if one else root / ".cache" / "cluster"
        self.home = Path(os.path.abspath(home or default))
        self.kafka_port = number("KAFKA_PORT", 19092 if one else 19292)
        # One node: its controller and secure listener next to it; N nodes: a block of ten
        # ports each, node N at base + N - 1.
        self.controller_port = number("KAFKA_CONTROLLER_PORT", self.kafka_port + (1 if one else 10))
        self.secure_port = number("KAFKA_SECURE_PORT", self.kafka_port + (2 if one else 20))
        self.pg_port = number("PG_PORT", 15432 if one else 15632)
        self.pg_db = environ.get("PG_DB") or "store_publish"
        heap = environ.get("KAFKA_HEAP_OPTS") or ("-Xms512m -Xmx1g" if one else "-Xms256m -Xmx512m")
        self.heap_opts = tuple(shlex.split(heap))
        self.secure = environ.get("KAFKA_SECURE", "0") == "1"
        self.scram_users = tuple(ScramUser(kafka_username(role), role.value) for role in Role)
        self.ready_timeout = number("READY_TIMEOUT", 120)
        self.stop_timeout = number("STOP_TIMEOUT", 30)
        self.pg_bin = Path(environ["PG_BIN"]) if environ.get("PG_BIN") else None
        self.java_home = Path(environ["JAVA_HOME"]) if environ.get("JAVA_HOME") else None
        self.logs = self.home / "logs"
        # The broker's jars: shared by every SERVICES_HOME, downloaded once.
        self.kafka_libs = root / ".cache" / "kafka-libs"
        self.secure_dir = self.home / "kafka-secure"
        self.pg_data = self.home / "pg-data"
        self.pg_run = self.home / "pg-run"
        self.pg_log = self.logs / "postgres.log"
        self.nodes = tuple(self.node(n) for n in range(1, self.brokers + 1))
        self.bootstrap_servers = ",".join(node.address for node in self.nodes)
        self.secure_bootstrap_servers = ",".join(f"{HOST}:{n.secure_port}" for n in self.nodes)
        self.database_url = f"postgresql://postgres@{HOST}:{self.pg_port}/{self.pg_db}"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], root: Path = ROOT) -> Config:
        return cls(environ, root)

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
