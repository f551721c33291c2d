"""What a `store-publish bench` run is asked to do."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BenchOptions:
    requests: int = 200_000
    creators: int = 50_000
    baseline: bool = False
    baseline_requests: int = 10_000
    rate: float = 1000.0
    latency_seconds: float = 60.0
    warmup_seconds: float = 2.0
    # The low-rate phase: the same as the latency phase at this rate (0 seconds skips it).
    low_rate: float = 100.0
    low_rate_seconds: float = 30.0
    # Before each steady-rate phase, the broker's and PostgreSQL's CPU with nothing of the
    # run going, for this long: what others sharing them cost meanwhile.
    shared_idle_seconds: float = 5.0
    workers: int = 1
    # Stream workers in one group beside the scale-out phase's consumers.
    stream_workers: int = 1
    # The gateway phase: this many concurrent HTTP clients (0 skips it), one POST per creator.
    gateway_clients: int = 20
    gateway_requests: int = 3000
    keep: bool = False
    # py-spy on the consumer and stream processes of each phase, raw stacks written here.
    profile_dir: Path | None = None
    # The latency phase again with the consumer and the stream tracing (OTLP to a sink on
    # loopback that drops): what tracing costs each process, off and on in one run.
    tracing: bool = False

    def refusal(self) -> str | None:
        """Why these options cannot run together, or None."""
        for name, count in (("--workers", self.workers), ("--stream-workers", self.stream_workers)):
            if count < 1:
                return f"{name} must be at least 1, not {count}"
        if self.tracing and self.latency_seconds <= 0:
            return (
                "--tracing runs the latency phase traced beside it untraced: "
                "--latency-seconds must be over 0"
            )
        return None
