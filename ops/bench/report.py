"""A run's report: its phases' figures, the targets checked, the summary printed and the JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ops.bench.figures import LatencyFigures, PhaseFigures
from ops.bench.floor import FloorFigures
from ops.bench.gateway import GatewayFigures
from ops.bench.options import BenchOptions
from ops.bench.steady_cpu import PIPELINE
from ops.bench.tracing_cost import TracingCost

TARGETS = {
    # Flooded: the pre-loaded requests as fast as they go.
    "pipeline_events_per_s": (">=", 10_000.0),
    "pipeline_to_passthrough": (">=", 0.30),
    "pipeline_to_baseline": (">=", 10.0),
    "consumer_cpu_us_per_request": ("<=", 70.0),
    "stream_alone_events_per_s": (">=", 40_000.0),
    "stream_cpu_us_per_outcome": ("<=", 25.0),
    # Of the scale-out phase: lag in seconds of outcomes, the time from the last outcome to
    # none uncounted, and the wait to be in an evaluated window in evaluation intervals.
    "scale_out_stream_lag_s": ("<=", 1.0),
    "scale_out_stream_zero_after_s": ("<=", 2.0),
    "scale_out_window_delay_intervals": ("<=", 2.0),
    # At the latency phase's rate (1,000/s): the p99 against the exactly-once floor's of the
    # same run, and each process's CPU per request (the consumer, the stream, the broker and
    # PostgreSQL, and the four together; the load generator apart).
    "latency_p99_to_floor": ("<=", 2.5),
    "latency_cpu_us_per_request": ("<=", 500.0),
    "latency_consumer_cpu_us_per_request": ("<=", 150.0),
    "latency_stream_cpu_us_per_request": ("<=", 30.0),
    "latency_broker_cpu_us_per_request": ("<=", 150.0),
    "latency_postgres_cpu_us_per_request": ("<=", 150.0),
    "latency_load_generator_cpu_us_per_request": ("<=", 30.0),
    # At the low rate (100/s): the four together, in cores.
    "low_rate_pipeline_cores": ("<=", 0.25),
    "gateway_p99_ms": ("<=", 100.0),
}


@dataclass
class Report:
    run_id: str
    cores: int
    options: BenchOptions
    passthrough: PhaseFigures | None = None
    pipeline: PhaseFigures | None = None
    stream_alone: PhaseFigures | None = None
    scale_out: PhaseFigures | None = None
    baseline: PhaseFigures | None = None
    latency: LatencyFigures | None = None
    latency_phase: PhaseFigures | None = None
    # `--tracing`: the latency phase again, traced.
    latency_traced: LatencyFigures | None = None
    latency_traced_phase: PhaseFigures | None = None
    floor: FloorFigures | None = None
    low_rate: LatencyFigures | None = None
    low_rate_phase: PhaseFigures | None = None
    gateway: GatewayFigures | None = None
    load_before: tuple[float, float, float] | None = None
    load_after: tuple[float, float, float] | None = None

    def _rate(self, phase: PhaseFigures | None) -> float | None:
        return round(phase.events_per_s, 1) if phase is not None else None

    def _ratio(self, over: PhaseFigures | None) -> float | None:
        mine, theirs = self._rate(self.pipeline), self._rate(over)
        return round(mine / theirs, 3) if mine is not None and theirs else None

    def stream_max_lag(self) -> int | None:
        values = [
            p.stream_max_lag
            for p in (
                self.pipeline,
                self.scale_out,
                self.baseline,
                self.latency_phase,
                self.low_rate_phase,
            )
            if p is not None and p.stream_max_lag is not None
        ]
        return max(values) if values else None

    def latency_to_floor(self) -> float | None:
        """The latency phase's p99 over the exactly-once floor's, both of this run."""
        mine = self.latency.record_ms["p99"] if self.latency else None
        floor = self.floor.record_ms["p99"] if self.floor else None
        return round(mine / floor, 2) if mine is not None and floor else None

    def tracing_cost(self) -> TracingCost | None:
        """Tracing off and on at the latency phase's rate, in this run; None unless
        `--tracing` ran."""
        off, on = self.latency_phase, self.latency_traced_phase
        if off is None or on is None:
            return None
        return TracingCost.of(off, on, self.latency, self.latency_traced)

    def tracing_lines(self) -> list[str]:
        cost = self.tracing_cost()
        return cost.lines() if cost is not None else []

    def targets(self) -> dict[str, dict[str, object]]:
        alone, out = self.stream_alone, self.scale_out
        per_outcome = alone.cpu_us_per_record if alone is not None else None
        delay = out.window_delay_max_s if out is not None else None
        interval = out.evaluate_interval_s if out is not None else None
        flooded = self.pipeline.cpu_us_per_request() if self.pipeline else {}
        steady = self.latency_phase.cpu_us_per_request() if self.latency_phase else {}
        values = {
            "pipeline_events_per_s": self._rate(self.pipeline),
            "pipeline_to_passthrough": self._ratio(self.passthrough),
            "pipeline_to_baseline": self._ratio(self.baseline),
            "consumer_cpu_us_per_request": flooded.get("consumer"),
            "stream_alone_events_per_s": self._rate(alone),
            "stream_cpu_us_per_outcome": round(per_outcome, 1) if per_outcome else None,
            "scale_out_stream_lag_s": out.stream_max_lag_seconds if out else None,
            "scale_out_stream_zero_after_s": out.stream_zero_after_s if out else None,
            "scale_out_window_delay_intervals": (
                round(delay / interval, 2) if delay is not None and interval else None
            ),
            "latency_p99_to_floor": self.latency_to_floor(),
            "latency_cpu_us_per_request": steady.get(PIPELINE),
            "latency_consumer_cpu_us_per_request": steady.get("consumer"),
            "latency_stream_cpu_us_per_request": steady.get("stream"),
            "latency_broker_cpu_us_per_request": steady.get("broker"),
            "latency_postgres_cpu_us_per_request": steady.get("postgres"),
            "latency_load_generator_cpu_us_per_request": steady.get("load generator"),
            "low_rate_pipeline_cores": (
                self.low_rate_phase.pipeline_cores if self.low_rate_phase else None
            ),
            "gateway_p99_ms": self.gateway.answer_ms["p99"] if self.gateway else None,
        }
        checked: dict[str, dict[str, object]] = {}
        for name, (sense, target) in TARGETS.items():
            value = values[name]
            met = None if value is None else (value >= target if sense == ">=" else value <= target)
            checked[name] = {"target": f"{sense} {target:g}", "value": value, "met": met}
        return checked

    def as_json(self) -> dict[str, object]:
        phases = {
            name: phase.as_json()
            for name, phase in (
                ("passthrough", self.passthrough),
                ("pipeline", self.pipeline),
                ("stream_alone", self.stream_alone),
                ("scale_out", self.scale_out),
                ("baseline", self.baseline),
                ("latency", self.latency_phase),
                ("latency_traced", self.latency_traced_phase),
                ("low_rate", self.low_rate_phase),
            )
            if phase is not None
        }
        return {
            "run_id": self.run_id,
            "cores": self.cores,
            "options": vars(self.options),
            "pipeline_events_per_s": self._rate(self.pipeline),
            "passthrough_events_per_s": self._rate(self.passthrough),
            "baseline_events_per_s": self._rate(self.baseline),
            "baseline_requests": self.baseline.requests if self.baseline else None,
            "stream_alone_events_per_s": self._rate(self.stream_alone),
            "scale_out_events_per_s": self._rate(self.scale_out),
            "scale_out_workers": self.scale_out.workers if self.scale_out else None,
            "scale_out_stream_workers": self.scale_out.stream_workers if self.scale_out else None,
            "pipeline_to_passthrough": self._ratio(self.passthrough),
            "pipeline_to_baseline": self._ratio(self.baseline),
            "latency_ms": self.latency.record_ms if self.latency else None,
            "latency_visible_ms": self.latency.visible_ms if self.latency else None,
            "latency_waiting_ms": self.latency.waiting_ms if self.latency else None,
            "latency_requests": self.latency.measured if self.latency else None,
            "latency_traced_ms": self.latency_traced.record_ms if self.latency_traced else None,
            "tracing": cost.as_json() if (cost := self.tracing_cost()) else None,
            "floor": self.floor.as_json() if self.floor else None,
            "latency_p99_to_floor": self.latency_to_floor(),
            "low_rate_latency_ms": self.low_rate.record_ms if self.low_rate else None,
            "gateway": self.gateway.as_json() if self.gateway else None,
            "stream_max_lag": self.stream_max_lag(),
            "load_average_before": self.load_before,
            "load_average_after": self.load_after,
            "targets": self.targets(),
            "phases": phases,
        }

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_json(), indent=2, default=str) + "\n")

    def summary(self) -> list[str]:
        lines = [f"summary ({self.cores} cores, run {self.run_id})"]
        for label, phase in (
            ("passthrough", self.passthrough),
            ("pipeline", self.pipeline),
            ("stream alone", self.stream_alone),
            (f"scale-out {self.options.workers}/{self.options.stream_workers}", self.scale_out),
            ("baseline", self.baseline),
        ):
            if phase is not None:
                lines.append(
                    f"  {label:<16} {phase.events_per_s:>10,.0f} requests/s "
                    f"({phase.requests:,} in {phase.seconds:.2f} s)"
                )
            elif label == "baseline":
                lines.append(f"  {label:<16} {'not run':>10} (--baseline)")
        if self.scale_out is not None and self.pipeline is not None:
            speedup = self.scale_out.events_per_s / max(self.pipeline.events_per_s, 1e-9)
            lines.append(f"  scale-out speed-up over one worker: x{speedup:.2f}")
        for name, check in self.targets().items():
            met = {True: "met", False: "MISSED", None: "not measured"}[check["met"]]  # type: ignore[index]
            lines.append(f"  {name:<24} {check['value']!s:>10}  target {check['target']}: {met}")
        if self.latency is not None and self.floor is not None:
            lines.append(
                f"  latency p99 {self.latency.record_ms['p99']} ms against the exactly-once "
                f"floor's {self.floor.record_ms['p99']} ms at {self.floor.rate:,.0f}/s"
            )
        if self.pipeline is not None:
            lines.append(f"  CPU seconds, pipeline phase: {self.pipeline.cpu_text()}")
        for steady in (self.latency_phase, self.latency_traced_phase, self.low_rate_phase):
            if steady is not None:
                lines.extend(steady.cpu_table())
        lines.extend(self.tracing_lines())
        lines.append(f"  stream max lag (committed offsets): {self.stream_max_lag()}")
        if self.load_before is not None and self.load_after is not None:
            lines.append(
                "  load average (1, 5, 15 min) before: "
                + ", ".join(f"{x:.2f}" for x in self.load_before)
                + "; after: "
                + ", ".join(f"{x:.2f}" for x in self.load_after)
            )
        return lines
