"""One bench run's names, settings and inputs, and what it must clean up."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pydantic import SecretStr

from ops.bench.cpu import (
    CpuSources,
    broker_pid,
    cpu_seconds,
    cpu_seconds_less_jit,
    jit_seconds,
)
from ops.bench.load import (
    BENCH_STEPS,
)
from ops.bench.options import BenchOptions
from ops.bench.probes import Child, free_port
from ops.bench.steady_cpu import BROKER_JIT
from ops.dev.seed import Population
from schemas.settings import Settings

PARTITIONS = 6


@dataclass
class Run:
    """One benchmark run's names, inputs and the things to clean up."""

    base: Settings
    options: BenchOptions
    say: Callable[[str], None]
    run_id: str = field(
        default_factory=lambda: datetime.now(UTC).strftime("%m%d%H%M%S") + uuid.uuid4().hex[:4]
    )
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bench-")))
    databases: list[str] = field(default_factory=list)
    population: Population | None = None
    pg_pid: int | None = None

    @property
    def prefix(self) -> str:
        return f"bench.{self.run_id}."

    @property
    def template(self) -> str:
        return f"bench_{self.run_id}_seed"

    def topic(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def settings(self, phase: str, requests_topic: str, dsn: str, **extra: object) -> Settings:
        return self.base.model_copy(
            update={
                "database_url": SecretStr(dsn),
                "topic_requests": requests_topic,
                "topic_outcomes": self.topic(f"{phase}.outcomes"),
                "topic_dlq": self.topic(f"{phase}.dlq"),
                "topic_alerts": self.topic(f"{phase}.alerts"),
                "topic_partitions": PARTITIONS,
                "consumer_group": self.topic(phase),
                "publish_required_steps": BENCH_STEPS,
                "consumer_http_port": 0,
                "stream_http_port": free_port(),
                **extra,
            }
        )

    def cpu_sources(self, children: Sequence[Child]) -> CpuSources:
        sources: dict[str, Callable[[], float | None]] = {c.name: c.cpu for c in children}
        kafka = broker_pid()
        if kafka is not None:
            sources["broker"] = lambda: cpu_seconds_less_jit(kafka)
            sources[BROKER_JIT] = lambda: jit_seconds(kafka)
        pg = self.pg_pid
        if pg is not None:
            sources["postgres"] = lambda: cpu_seconds(pg, with_children=True)
        sources["bench"] = lambda: cpu_seconds(os.getpid())
        return sources
