"""One phase's figures (throughput, CPU, the lag samples and what they say about the stream)
and the latency phase's quantiles: what each phase returns, printed and written as JSON."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ops.bench.poll_steps import PollSteps
from ops.bench.probes import LagSample
from ops.bench.steady_cpu import SteadyRateCpu


@dataclass
class PhaseFigures(SteadyRateCpu):
    name: str
    requests: int
    seconds: float
    statuses: dict[str, int]
    cpu_seconds: dict[str, float | None]
    per_second: list[tuple[int, int]]
    lag: list[LagSample] = field(default_factory=list)
    workers: int = 1
    stream_workers: int = 1
    evaluate_interval_s: float | None = None
    # The process whose CPU per record the line prints (the stream-alone phase: the stream).
    cpu_per_record_of: str | None = None
    poll_steps: PollSteps | None = None
    # Wall seconds over which `cpu_seconds` were taken (from resuming to the last outcome).
    cpu_span_s: float | None = None
    # The steady-rate phases: requests offered per second, and the shared services' CPU (in
    # cores) with nothing of the run going, just before (`phases.shared_idle_cores`).
    offered_rate: float | None = None
    shared_idle_cores: dict[str, float | None] = field(default_factory=dict)
    # A traced phase: the OTLP exports (and their bytes) its processes sent to the sink.
    trace_export: dict[str, int] | None = None

    @property
    def events_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def stream_max_lag(self) -> int | None:
        return _largest(s.stream_lag for s in self.lag)

    @property
    def stream_max_counted_lag(self) -> int | None:
        return _largest(s.stream_counted_lag for s in self.lag)

    @property
    def stream_max_lag_seconds(self) -> float | None:
        """The stream's worst uncounted lag in seconds of outcomes at the phase's rate."""
        worst = self.stream_max_counted_lag
        rate = self.events_per_s
        return round(worst / rate, 3) if worst is not None and rate else None

    @property
    def last_outcome_at(self) -> float | None:
        """When the last outcome was seen: the first sample that had seen them all."""
        return next((s.seconds for s in self.lag if s.outcomes >= self.requests), None)

    @property
    def stream_zero_after_s(self) -> float | None:
        """From the last outcome to the first sample with every outcome counted (to within
        the sampling interval)."""
        last = self.last_outcome_at
        if last is None:
            return None
        zero = next(
            (s.seconds for s in self.lag if s.seconds >= last and s.stream_counted_lag == 0),
            None,
        )
        return round(zero - last, 2) if zero is not None else None

    @property
    def window_delay_max_s(self) -> float | None:
        """How long outcomes waited, at most, to be in an evaluated window: for each window
        count the evaluator reported, from the sample that first saw that many outcomes out
        to the one that first saw them in the window."""
        reached: list[tuple[int, float]] = []  # (outcomes seen, first seen at), ascending
        for sample in self.lag:
            if not reached or sample.outcomes > reached[-1][0]:
                reached.append((sample.outcomes, sample.seconds))
        worst: float | None = None
        shown = 0
        for sample in self.lag:
            window = sample.window_outcomes
            if window is None or window <= shown:
                continue
            shown = window
            out_at = next((at for count, at in reached if count >= window), None)
            if out_at is not None:
                delay = sample.seconds - out_at
                worst = delay if worst is None else max(worst, delay)
        return round(worst, 2) if worst is not None else None

    def lag_lines(self, rows: int = 16) -> list[str]:
        """The stream's lag over time, at most `rows` evenly spaced samples, then each one
        from the last outcome until the lag is zero."""
        if not self.lag:
            return []
        step = max(1, len(self.lag) // rows)
        last = self.last_outcome_at
        picked = [
            s
            for i, s in enumerate(self.lag)
            if i % step == 0
            or s.seconds == last
            or (last is not None and s.seconds >= last and s.stream_counted_lag)
        ]
        lines = [f"  {self.name} lag over time (s: consumer / stream committed / uncounted):"]
        for s in picked:
            mark = "  <- last outcome" if s.seconds == last else ""
            lines.append(
                f"    {s.seconds:7.2f}  {s.consumer_lag} / {s.stream_lag} / "
                f"{s.stream_counted_lag}{mark}"
            )
        return lines

    @property
    def consumer_max_lag(self) -> int | None:
        return _largest(s.consumer_lag for s in self.lag)

    @property
    def cpu_us_per_record(self) -> float | None:
        used = self.cpu_seconds.get(self.cpu_per_record_of or "")
        return used / self.requests * 1e6 if used is not None and self.requests else None

    def cpu_text(self) -> str:
        return ", ".join(
            f"{name} {value:.1f}" for name, value in self.cpu_seconds.items() if value is not None
        )

    def line(self) -> str:
        text = (
            f"  {self.name}: {self.requests:,} in {self.seconds:.2f} s = "
            f"{self.events_per_s:,.0f} requests/s; CPU s: {self.cpu_text()}"
        )
        per_record = self.cpu_us_per_record
        if per_record is not None:
            text += f"; CPU µs per outcome: {self.cpu_per_record_of} {per_record:.1f}"
        if self.poll_steps is not None:
            text += f"; poll steps, mean ms: {self.poll_steps.text()}"
        if self.lag:
            text += (
                f"; lag max: consumer {self.consumer_max_lag}, stream {self.stream_max_lag} "
                f"(committed), {self.stream_max_counted_lag} (uncounted by the stream, "
                f"{self.stream_max_lag_seconds} s of outcomes); stream "
                f"{self.stream_workers} worker(s), counted all {self.stream_zero_after_s} s "
                f"after the last outcome; in an evaluated window at most "
                f"{self.window_delay_max_s} s after (evaluated every "
                f"{self.evaluate_interval_s or 0:g} s)"
            )
        return text

    def as_json(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "events_per_s": round(self.events_per_s, 1),
            "workers": self.workers,
            "statuses": self.statuses,
            "cpu_seconds": self.cpu_seconds,
            "consumer_max_lag": self.consumer_max_lag,
            "stream_max_lag": self.stream_max_lag,
            "stream_max_counted_lag": self.stream_max_counted_lag,
            "stream_workers": self.stream_workers,
            "stream_max_lag_seconds": self.stream_max_lag_seconds,
            "stream_zero_after_s": self.stream_zero_after_s,
            "window_delay_max_s": self.window_delay_max_s,
            "evaluate_interval_s": self.evaluate_interval_s,
            "cpu_us_per_record": self.cpu_us_per_record,
            "cpu_span_s": self.cpu_span_s,
            "offered_rate": self.offered_rate,
            "process_cpu_seconds": self.process_cpu(),
            "cpu_us_per_request": self.cpu_us_per_request(),
            "pipeline_cores": self.pipeline_cores,
            "shared_idle_cores": self.shared_idle_cores,
            "cpu_us_per_request_net_of_idle": self.net_of_idle_us_per_request(),
            "kafka_transactions": self.kafka_transactions,
            "kafka_transactions_per_s": self.kafka_transactions_per_s,
            "trace_export": self.trace_export,
            "poll_step_mean_ms": self.poll_steps.mean_ms() if self.poll_steps else None,
            "polls": max(self.poll_steps.counts.values(), default=0) if self.poll_steps else None,
            "per_second": self.per_second,
            "lag": [vars(sample) for sample in self.lag],
        }


def _largest(samples: Iterable[int | None]) -> int | None:
    """The largest of the values sampled; None when no sample had one."""
    values = [value for value in samples if value is not None]
    return max(values) if values else None


def quantile(ordered: Sequence[float], q: float) -> float | None:
    """Nearest rank."""
    if not ordered:
        return None
    return round(float(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]), 2)


def latency_quantiles(values: Sequence[float]) -> dict[str, float | None]:
    """p50, p95, p99, p99.9 and the maximum of latencies in ms."""
    ordered = sorted(values)
    return {
        "p50": quantile(ordered, 0.50),
        "p95": quantile(ordered, 0.95),
        "p99": quantile(ordered, 0.99),
        "p999": quantile(ordered, 0.999),
        "max": round(float(ordered[-1]), 2) if ordered else None,
    }


@dataclass(frozen=True)
class LatencyFigures:
    rate: float
    seconds: float
    measured: int
    record_ms: dict[str, float | None]
    visible_ms: dict[str, float | None]
    # Of record_ms, the part before the consumer's batch began (in Kafka, in the fetch, or
    # waiting for the batch before it); the rest is the batch's processing.
    waiting_ms: dict[str, float | None]

    @classmethod
    def of(
        cls,
        record_ms: list[float],
        visible_ms: list[float],
        waiting_ms: list[float],
        rate: float,
        seconds: float,
    ) -> LatencyFigures:
        return cls(
            rate,
            seconds,
            len(record_ms),
            latency_quantiles(record_ms),
            latency_quantiles(visible_ms),
            latency_quantiles(waiting_ms),
        )

    def line(self) -> str:
        r, v, w = self.record_ms, self.visible_ms, self.waiting_ms
        return (
            f"  latency at {self.rate:,.0f}/s over {self.seconds:g} s ({self.measured:,} "
            f"parsed requests): p50 {r['p50']} ms, p95 {r['p95']} ms, p99 {r['p99']} ms, "
            f"p99.9 {r['p999']} ms, max {r['max']} ms (record timestamps), of which before "
            f"the consumer's batch began: p50 {w['p50']} ms, p99 {w['p99']} ms; committed "
            f"and read back: p50 {v['p50']} ms, p99 {v['p99']} ms"
        )
