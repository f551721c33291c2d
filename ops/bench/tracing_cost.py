"""`--tracing`: what tracing costs each process at the latency phase's rate, read from the
latency phase (tracing off) and its traced twin of the same run."""

from __future__ import annotations

from dataclasses import dataclass

from ops.bench.figures import LatencyFigures, PhaseFigures

# What the traced phase exports to (ops/bench/otlp_sink.py).
EXPORTER = "otlp (the SDK's OTLP/HTTP protobuf exporter) to a loopback sink that drops"


@dataclass(frozen=True)
class TracingCost:
    rate: float | None
    # CPU µs per request by process role (and the four together), off and on.
    off: dict[str, float | None]
    on: dict[str, float | None]
    p99_ms_off: float | None
    p99_ms_on: float | None
    # The OTLP exports the traced processes sent (the proof they traced), and their bytes.
    exported: dict[str, int] | None

    @classmethod
    def of(
        cls,
        off: PhaseFigures,
        on: PhaseFigures,
        latency_off: LatencyFigures | None,
        latency_on: LatencyFigures | None,
    ) -> TracingCost:
        return cls(
            rate=on.offered_rate,
            off=off.cpu_us_per_request(),
            on=on.cpu_us_per_request(),
            p99_ms_off=latency_off.record_ms["p99"] if latency_off else None,
            p99_ms_on=latency_on.record_ms["p99"] if latency_on else None,
            exported=on.trace_export,
        )

    @property
    def added(self) -> dict[str, float | None]:
        """On minus off, per process role."""
        added: dict[str, float | None] = {}
        for role, off in self.off.items():
            on = self.on.get(role)
            added[role] = round(on - off, 1) if on is not None and off is not None else None
        return added

    def as_json(self) -> dict[str, object]:
        return {
            "exporter": EXPORTER,
            "rate": self.rate,
            "cpu_us_per_request_off": self.off,
            "cpu_us_per_request_on": self.on,
            "cpu_us_per_request_added": self.added,
            "latency_p99_ms_off": self.p99_ms_off,
            "latency_p99_ms_on": self.p99_ms_on,
            "trace_export": self.exported,
        }

    def lines(self) -> list[str]:
        added = self.added
        lines = [
            f"  tracing at {self.rate or 0:,.0f}/s, CPU µs per request, off -> on (added); "
            f"exporter: {EXPORTER}"
        ]
        for role, off in self.off.items():
            lines.append(
                f"    {role:<16} {_us(off):>8} -> {_us(self.on.get(role)):>8} "
                f"({_signed(added.get(role))})"
            )
        exported = self.exported or {}
        lines.append(
            f"    latency p99 {self.p99_ms_off} ms -> {self.p99_ms_on} ms; OTLP exports "
            f"{exported.get('exports', 0):,} ({exported.get('bytes', 0):,} bytes)"
        )
        return lines


def _us(value: float | None) -> str:
    return f"{value:.1f}" if value is not None else "-"


def _signed(value: float | None) -> str:
    return f"{value:+.1f}" if value is not None else "-"
