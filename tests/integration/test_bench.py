"""`store-publish bench` end to end on a small run: the figures exist and the counts add up.

Speeds are never asserted: they depend on the machine and on whatever else runs on it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import SecretStr

from ops.bench.chart import write_chart
from ops.bench.cpu import broker_pid
from ops.bench.options import BenchOptions
from ops.bench.run import run_bench
from schemas.settings import Settings

REQUIRED_KEYS = {
    "latency_p99_to_floor",
    "low_rate_latency_ms",
    "gateway",
    "pipeline_events_per_s",
    "passthrough_events_per_s",
    "baseline_events_per_s",
    "pipeline_to_passthrough",
    "pipeline_to_baseline",
    "latency_ms",
    "stream_max_lag",
}


@pytest.mark.timeout(600)
async def test_bench_small_run_reports_every_figure_and_accounts_for_every_request(
    services: dict[str, str], tmp_path: Path
) -> None:
    settings = Settings(
        kafka_bootstrap_servers=services["KAFKA_BOOTSTRAP_SERVERS"],
        database_url=SecretStr(services["DATABASE_URL"]),
    )
    options = BenchOptions(
        requests=2000,
        creators=500,
        baseline=True,
        baseline_requests=200,
        rate=200.0,
        latency_seconds=3.0,
        warmup_seconds=1.0,
        workers=2,
        stream_workers=2,
        low_rate=50.0,
        low_rate_seconds=2.0,
        shared_idle_seconds=0.5,
    )
    said: list[str] = []
    report = await run_bench(settings, options, say=said.append)
    report.write_json(tmp_path / "bench.json")
    write_chart(report, tmp_path / "bench.png")

    figures = json.loads((tmp_path / "bench.json").read_text())
    assert figures.keys() >= REQUIRED_KEYS
    assert set(figures["latency_ms"]) >= {"p50", "p95", "p99", "p999"}
    assert all(isinstance(figures["latency_ms"][q], float) for q in ("p50", "p99", "p999"))
    for name in ("pipeline_events_per_s", "passthrough_events_per_s", "baseline_events_per_s"):
        assert figures[name] > 0
    assert figures["pipeline_to_passthrough"] == pytest.approx(
        figures["pipeline_events_per_s"] / figures["passthrough_events_per_s"], rel=0.01
    )
    assert figures["pipeline_to_baseline"] == pytest.approx(
        figures["pipeline_events_per_s"] / figures["baseline_events_per_s"], rel=0.01
    )

    phases = figures["phases"]
    # One outcome per request, in every consumer phase.
    for name, expected in (("pipeline", 2000), ("scale_out", 2000), ("baseline", 200)):
        assert phases[name]["requests"] == expected, name
        assert sum(phases[name]["statuses"].values()) == expected, name
    assert phases["passthrough"]["requests"] == 2000
    assert 0 < figures["latency_requests"] <= 200 * 3
    assert phases["latency"]["requests"] == 200 * (3 + 1)
    assert phases["scale_out"]["workers"] == 2
    # Two stream workers shared the scale-out phase, counted everything, and were timed.
    assert phases["scale_out"]["stream_workers"] == 2
    assert phases["scale_out"]["cpu_seconds"]["stream"] is not None
    assert phases["scale_out"]["lag"][-1]["stream_counted_lag"] == 0
    assert phases["scale_out"]["stream_zero_after_s"] is not None
    assert phases["scale_out"]["lag"][-1]["window_outcomes"] == 2000
    assert figures["targets"]["scale_out_window_delay_intervals"]["value"] is not None
    assert any("lag over time" in line for line in said)
    # The stream alone counted every outcome of the pipeline phase, on its own CPU.
    assert phases["stream_alone"]["requests"] == 2000
    assert figures["stream_alone_events_per_s"] > 0
    assert phases["stream_alone"]["cpu_seconds"]["stream"] is not None
    assert figures["baseline_requests"] == 200
    # The stream was watched, and caught up.
    assert phases["pipeline"]["lag"], "no lag samples"
    assert figures["stream_max_lag"] is not None
    assert phases["pipeline"]["lag"][-1]["stream_counted_lag"] == 0
    assert phases["pipeline"]["cpu_seconds"]["consumer-1"] is not None
    # Each consumer's poll steps, read from its /metrics: both scale-out consumers polled.
    for name in ("pipeline", "latency", "scale_out"):
        assert set(phases[name]["poll_step_mean_ms"]) == {"decide", "wait", "commit"}, name
        assert phases[name]["polls"] > 0, name
    assert any("latency phase poll steps" in line for line in said)
    # Each process's CPU at the two steady rates, per request, and the Kafka transactions.
    assert phases["low_rate"]["requests"] == 50 * (2 + 1)
    assert figures["low_rate_latency_ms"]["p99"] is not None
    for name in ("latency", "low_rate"):
        per = phases[name]["cpu_us_per_request"]
        assert set(per) >= {"consumer", "stream", "postgres", "load generator", "the four"}
        assert all(per[role] > 0 for role in ("consumer", "stream", "load generator")), name
        assert phases[name]["kafka_transactions_per_s"] > 0, name
        assert set(phases[name]["shared_idle_cores"]) <= {"broker", "postgres"}, name
        if broker_pid() is not None:
            # The broker's JIT compilation is read apart from its CPU, and left out of it.
            assert phases[name]["cpu_seconds"]["broker JIT"] is not None, name
            assert phases[name]["cpu_us_per_request"]["broker JIT"] >= 0, name
    assert figures["targets"]["latency_p99_to_floor"]["value"] == figures["latency_p99_to_floor"]
    assert figures["targets"]["low_rate_pipeline_cores"]["target"] == "<= 0.25"
    assert figures["gateway"]["requests"] > 0
    assert figures["targets"]["gateway_p99_ms"]["value"] == figures["gateway"]["answer_ms"]["p99"]
    assert any(line.startswith("  CPU at 50/s") for line in report.summary())
    # The exactly-once floor copied every request offered at the same rate, and was timed.
    floor = figures["floor"]
    assert floor["rate"] == 200
    assert floor["measured"] == 200 * 3
    assert all(
        isinstance(floor[kind][q], float)
        for kind in ("record_ms", "visible_ms")
        for q in ("p50", "p99")
    )
    assert floor["record_ms"]["p50"] <= floor["record_ms"]["p99"] <= floor["visible_ms"]["p99"]
    assert floor["cpu_us_per_record"] > 0
    assert any("against the exactly-once floor" in line for line in report.summary())
    assert any("exactly-once floor at 200/s" in line for line in said)
    assert (tmp_path / "bench.png").read_bytes().startswith(b"\x89PNG")
    assert any("passthrough" in line for line in said)
