"""The benchmark's figures: what is printed, what goes to JSON, and the chart."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ops.bench.options import BenchOptions
from ops.bench.probes import LagSample

TARGETS = {
    "pipeline_events_per_s": (">=", 10_000.0),
    "pipeline_to_passthrough": (">=", 0.30),
    "pipeline_to_baseline": (">=", 10.0),
    "latency_p99_ms": ("<=", 25.0),
    "stream_alone_events_per_s": (">=", 40_000.0),
    "stream_cpu_us_per_outcome": ("<=", 25.0),
    # Of the scale-out phase: lag in seconds of outcomes, the time from the last outcome to
    # none uncounted, and the wait to be in an evaluated window in evaluation intervals.
    "scale_out_stream_lag_s": ("<=", 1.0),
    "scale_out_stream_zero_after_s": ("<=", 2.0),
    "scale_out_window_delay_intervals": ("<=", 2.0),
}


@dataclass
class PhaseFigures:
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

    @property
    def events_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def stream_max_lag(self) -> int | None:
        values = [s.stream_lag for s in self.lag if s.stream_lag is not None]
        return max(values) if values else None

    @property
    def stream_max_counted_lag(self) -> int | None:
        values = [s.stream_counted_lag for s in self.lag if s.stream_counted_lag is not None]
        return max(values) if values else None

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
        values = [s.consumer_lag for s in self.lag if s.consumer_lag is not None]
        return max(values) if values else None

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
            "per_second": self.per_second,
            "lag": [vars(sample) for sample in self.lag],
        }


def _quantile(ordered: Sequence[float], q: float) -> float | None:
    """Nearest rank."""
    if not ordered:
        return None
    return round(float(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]), 2)


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
        options: BenchOptions,
    ) -> LatencyFigures:
        def quantiles(values: list[float]) -> dict[str, float | None]:
            ordered = sorted(values)
            return {
                "p50": _quantile(ordered, 0.50),
                "p95": _quantile(ordered, 0.95),
                "p99": _quantile(ordered, 0.99),
                "p999": _quantile(ordered, 0.999),
                "max": round(float(ordered[-1]), 2) if ordered else None,
            }

        return cls(
            options.rate,
            options.latency_seconds,
            len(record_ms),
            quantiles(record_ms),
            quantiles(visible_ms),
            quantiles(waiting_ms),
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
            for p in (self.pipeline, self.scale_out, self.baseline, self.latency_phase)
            if p is not None and p.stream_max_lag is not None
        ]
        return max(values) if values else None

    def targets(self) -> dict[str, dict[str, object]]:
        alone, out = self.stream_alone, self.scale_out
        per_outcome = alone.cpu_us_per_record if alone is not None else None
        delay = out.window_delay_max_s if out is not None else None
        interval = out.evaluate_interval_s if out is not None else None
        values = {
            "pipeline_events_per_s": self._rate(self.pipeline),
            "pipeline_to_passthrough": self._ratio(self.passthrough),
            "pipeline_to_baseline": self._ratio(self.baseline),
            "latency_p99_ms": self.latency.record_ms["p99"] if self.latency else None,
            "stream_alone_events_per_s": self._rate(alone),
            "stream_cpu_us_per_outcome": round(per_outcome, 1) if per_outcome else None,
            "scale_out_stream_lag_s": out.stream_max_lag_seconds if out else None,
            "scale_out_stream_zero_after_s": out.stream_zero_after_s if out else None,
            "scale_out_window_delay_intervals": (
                round(delay / interval, 2) if delay is not None and interval else None
            ),
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
        if self.pipeline is not None:
            lines.append(f"  CPU seconds, pipeline phase: {self.pipeline.cpu_text()}")
        if self.latency_phase is not None:
            lines.append(f"  CPU seconds, latency phase: {self.latency_phase.cpu_text()}")
        lines.append(f"  stream max lag (committed offsets): {self.stream_max_lag()}")
        if self.load_before is not None and self.load_after is not None:
            lines.append(
                "  load average (1, 5, 15 min) before: "
                + ", ".join(f"{x:.2f}" for x in self.load_before)
                + "; after: "
                + ", ".join(f"{x:.2f}" for x in self.load_after)
            )
        return lines


# A poll's outcomes share one transaction and nearly one timestamp: per second, the count
# jumps between a whole poll and nothing, so the chart shows a short running mean.
CHART_WINDOW_SECONDS = 5


def rolling_mean(per_second: list[tuple[int, int]], window: int) -> tuple[list[int], list[float]]:
    """Seconds since the first, and the mean count over the `window` seconds ending at each;
    seconds with nothing count as zero."""
    counts = dict(per_second)
    start, end = per_second[0][0], per_second[-1][0]
    series = [counts.get(second, 0) for second in range(start, end + 1)]
    means = [
        sum(series[max(0, i - window + 1) : i + 1]) / min(window, i + 1) for i in range(len(series))
    ]
    return list(range(len(series))), means


def write_chart(report: Report, path: Path) -> None:
    """Throughput per second of each phase, and the pipeline's lag, against time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), constrained_layout=True)
    for phase in (report.passthrough, report.pipeline, report.scale_out, report.baseline):
        if phase is None or not phase.per_second:
            continue
        seconds, means = rolling_mean(phase.per_second, CHART_WINDOW_SECONDS)
        top.plot(seconds, means, marker=".", label=f"{phase.name} ({phase.events_per_s:,.0f}/s)")
    top.set_title(
        f"throughput (records per second, {CHART_WINDOW_SECONDS} s mean, by record timestamp)"
    )
    top.set_xlabel("seconds since the phase's first record")
    top.set_ylabel("records/s")
    top.legend()
    top.grid(alpha=0.3)
    for phase in (report.pipeline, report.latency_phase):
        if phase is None or not phase.lag:
            continue
        times = [s.seconds for s in phase.lag]
        for attr, label in (
            ("consumer_lag", "consumer lag"),
            ("stream_lag", "stream lag (committed)"),
            ("stream_counted_lag", "stream lag (uncounted)"),
        ):
            bottom.plot(
                times,
                [getattr(s, attr) if getattr(s, attr) is not None else math.nan for s in phase.lag],
                label=f"{phase.name}: {label}",
            )
    bottom.set_title("lag (records) over time")
    bottom.set_xlabel("seconds since sampling began")
    bottom.set_ylabel("records")
    bottom.set_yscale("symlog")
    bottom.legend(fontsize="small")
    bottom.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
