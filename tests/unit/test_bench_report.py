"""The bench figures: the chart's running mean, in which empty seconds count, the
stream's lag, time to zero and window delay read from the lag samples, and each process's
CPU at a steady rate with the targets the summary checks."""

from __future__ import annotations

import random
import re

from ops.bench.chart import rolling_mean
from ops.bench.figures import LatencyFigures, PhaseFigures
from ops.bench.floor import FloorFigures
from ops.bench.latency import in_traces
from ops.bench.load import Request
from ops.bench.options import BenchOptions
from ops.bench.poll_steps import PollSteps
from ops.bench.probes import LagSample
from ops.bench.report import Report


def test_empty_seconds_count_as_zero_in_the_running_mean() -> None:
    # Polls of 5,000 landing every other second: 2,500/s on average, never 5,000.
    per_second = [(100, 5000), (102, 5000), (104, 5000), (106, 5000)]
    seconds, means = rolling_mean(per_second, window=4)
    assert seconds == list(range(7))
    assert means[:3] == [5000.0, 2500.0, 10000 / 3]
    assert means[3:] == [2500.0, 2500.0, 2500.0, 2500.0]


def test_a_window_of_one_is_the_counts_themselves() -> None:
    seconds, means = rolling_mean([(7, 3), (8, 0), (9, 4)], window=1)
    assert (seconds, means) == ([0, 1, 2], [3.0, 0.0, 4.0])


def phase(samples: list[LagSample], requests: int = 1000, seconds: float = 2.0) -> PhaseFigures:
    return PhaseFigures(
        name="workers2",
        requests=requests,
        seconds=seconds,
        statuses={},
        cpu_seconds={},
        per_second=[],
        lag=samples,
        stream_workers=2,
        evaluate_interval_s=0.5,
    )


def sample(at: float, outcomes: int, uncounted: int, window: int | None) -> LagSample:
    return LagSample(at, 0, 0, uncounted, outcomes, window)


def test_the_stream_lag_figures_come_from_the_samples() -> None:
    figures = phase(
        [
            sample(0.0, 0, 0, 0),
            sample(0.5, 400, 120, 0),
            sample(1.0, 800, 250, 280),  # 280 were out by 0.5 s: 0.5 s late
            sample(1.5, 1000, 90, 550),  # 550 were out by 1.0 s
            sample(2.0, 1000, 0, 910),  # 910 were out by 1.5 s
            sample(2.5, 1000, 0, 1000),  # all 1,000 out by 1.5 s: 1.0 s late
        ]
    )
    assert figures.stream_max_counted_lag == 250
    assert figures.stream_max_lag_seconds == 0.5  # 250 outcomes at 500/s
    assert figures.last_outcome_at == 1.5
    assert figures.stream_zero_after_s == 0.5
    assert figures.window_delay_max_s == 1.0
    lines = figures.lag_lines(rows=3)
    assert lines[0].startswith("  workers2 lag over time")
    assert any(line.endswith("<- last outcome") for line in lines)
    assert "stream 2 worker(s), counted all 0.5 s after the last outcome" in figures.line()


def test_a_stream_that_never_caught_up_has_no_time_to_zero() -> None:
    figures = phase([sample(0.0, 0, 0, 0), sample(0.5, 1000, 300, 0), sample(1.0, 1000, 10, 0)])
    assert figures.stream_zero_after_s is None
    assert figures.window_delay_max_s is None


def steady(
    cpu: dict[str, float | None], *, requests: int = 2000, span_s: float = 2.0
) -> PhaseFigures:
    return PhaseFigures(
        name="latency",
        requests=requests,
        seconds=span_s,
        statuses={},
        cpu_seconds=cpu,
        per_second=[],
        poll_steps=PollSteps(counts={"decide": 41, "wait": 41, "commit": 40}),
        cpu_span_s=span_s,
        offered_rate=1000.0,
        shared_idle_cores={"broker": 0.05, "postgres": None},
    )


def test_each_process_cpu_per_request_and_the_four_together() -> None:
    figures = steady(
        {"stream": 0.06, "consumer-1": 0.2, "broker": 0.3, "postgres": 0.24, "bench": 0.05}
    )
    assert figures.process_cpu() == {
        "consumer": 0.2,
        "stream": 0.06,
        "broker": 0.3,
        "postgres": 0.24,
        "load generator": 0.05,
    }
    assert figures.cpu_us_per_request() == {
        "consumer": 100.0,
        "stream": 30.0,
        "broker": 150.0,
        "postgres": 120.0,
        "load generator": 25.0,
        "the four": 400.0,
    }
    assert figures.pipeline_cores == 0.4  # 0.8 CPU s over 2 s
    assert figures.kafka_transactions_per_s == 20.0  # one per committed poll
    # The broker idled at 0.05 cores before: 0.1 s of its 0.3 over the span was not ours.
    assert figures.net_of_idle_us_per_request() == {"broker": 100.0, "postgres": None}
    table = "\n".join(figures.cpu_table())
    assert "CPU at 1,000/s (2,000 requests, 2.0 s)" in table
    assert "400.0 µs/request, 0.400 cores; Kafka transactions 20.0/s" in table


def test_the_brokers_jit_compilation_is_shown_apart_and_left_out_of_the_four() -> None:
    figures = steady(
        {
            "stream": 0.06,
            "consumer-1": 0.2,
            "broker": 0.3,
            "broker JIT": 0.1,
            "postgres": 0.24,
            "bench": 0.05,
        }
    )
    per = figures.cpu_us_per_request()
    assert per["broker JIT"] == 50.0
    assert per["broker"] == 150.0
    assert per["the four"] == 400.0  # consumer, stream, broker and PostgreSQL: no JIT
    assert figures.pipeline_cores == 0.4
    table = figures.cpu_table()
    broker = next(i for i, line in enumerate(table) if line.lstrip().startswith("broker"))
    assert "150.0 µs/request" in table[broker]
    assert "0.10 s" in table[broker + 1]
    assert "JIT compiler" in table[broker + 1]
    assert "50.0 µs/request, apart from the four" in table[broker + 1]
    assert len(table[broker + 1]) <= 80


def test_workers_of_one_role_are_added_and_an_unknown_process_leaves_the_four_unknown() -> None:
    figures = steady({"stream-1": 0.1, "stream-2": 0.1, "consumer-1": 0.2, "consumer-2": 0.1})
    assert figures.process_cpu() == {"consumer": 0.3, "stream": 0.2}
    assert figures.cpu_us_per_request()["the four"] is None  # no broker, no PostgreSQL here
    assert figures.pipeline_cores is None
    # When the phase already summed several workers under the role's name, that sum is taken.
    summed = steady({"consumer-1": 0.2, "consumer-2": 0.1, "consumer": 0.3})
    assert summed.process_cpu()["consumer"] == 0.3


def test_the_summary_checks_the_steady_rate_targets_against_the_same_run() -> None:
    report = Report(run_id="r", cores=2, options=BenchOptions())
    report.latency_phase = steady(
        {"stream": 0.1, "consumer-1": 0.2, "broker": 0.3, "postgres": 0.24, "bench": 0.05}
    )
    report.low_rate_phase = steady(
        {"stream": 0.1, "consumer-1": 0.1, "broker": 0.2, "postgres": 0.1, "bench": 0.05},
        requests=200,
    )
    report.latency = LatencyFigures(1000.0, 2.0, 2000, {"p99": 60.0}, {}, {})
    report.floor = FloorFigures(1000.0, 2000, {"p99": 20.0}, {"p99": 30.0}, 300.0)
    targets = report.targets()
    assert targets["latency_p99_to_floor"] == {"target": "<= 2.5", "value": 3.0, "met": False}
    assert targets["latency_stream_cpu_us_per_request"]["value"] == 50.0
    assert targets["latency_stream_cpu_us_per_request"]["met"] is False
    assert targets["latency_cpu_us_per_request"] == {
        "target": "<= 500",
        "value": 420.0,
        "met": True,
    }
    assert targets["latency_load_generator_cpu_us_per_request"]["met"] is True
    assert targets["low_rate_pipeline_cores"] == {"target": "<= 0.25", "value": 0.25, "met": True}
    assert targets["gateway_p99_ms"]["met"] is None  # not run
    figures = report.as_json()
    assert figures["latency_p99_to_floor"] == 3.0
    phases = figures["phases"]
    assert isinstance(phases, dict)
    assert phases["low_rate"]["kafka_transactions_per_s"] == 20.0
    assert phases["latency"]["cpu_us_per_request"]["the four"] == 420.0
    summary = "\n".join(report.summary())
    assert "CPU at 1,000/s" in summary


def test_tracing_is_measured_beside_an_untraced_latency_phase_only() -> None:
    assert BenchOptions(tracing=True).refusal() is None
    refusal = BenchOptions(tracing=True, latency_seconds=0).refusal()
    assert refusal is not None
    assert "--tracing" in refusal
    assert "--latency-seconds" in refusal
    assert BenchOptions(latency_seconds=0).refusal() is None
    assert BenchOptions(workers=0).refusal() == "--workers must be at least 1, not 0"


def test_the_traced_requests_each_start_a_trace_of_their_own() -> None:
    requests = [Request(b"k", b"{}", [("signature", b"sha256=ab")], str(i)) for i in range(3)]
    traced = in_traces(requests, random.Random(7))
    parents = [dict(r.headers)["traceparent"].decode() for r in traced]
    assert all(re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", p) for p in parents)
    assert len({p.split("-")[1] for p in parents}) == 3
    assert [r.headers[0] for r in traced] == [("signature", b"sha256=ab")] * 3
    assert requests[0].headers == [("signature", b"sha256=ab")]  # the plan is left as it was


def test_the_report_gives_each_process_cpu_with_tracing_off_and_on() -> None:
    off = steady({"consumer-1": 0.2, "stream": 0.04, "broker": 0.3, "postgres": 0.24})
    on = steady({"consumer-1": 0.4, "stream": 0.05, "broker": 0.32, "postgres": 0.24})
    on.trace_export = {"exports": 9, "bytes": 812_000}
    report = Report(
        run_id="r1",
        cores=2,
        options=BenchOptions(tracing=True),
        latency_phase=off,
        latency_traced_phase=on,
        latency=LatencyFigures.of([10.0, 20.0], [11.0, 21.0], [1.0, 2.0], 1000.0, 2.0),
        latency_traced=LatencyFigures.of([12.0, 30.0], [13.0, 31.0], [1.0, 2.0], 1000.0, 2.0),
    )
    figures = report.as_json()
    tracing = figures["tracing"]
    assert isinstance(tracing, dict)
    assert tracing["rate"] == 1000.0
    assert tracing["cpu_us_per_request_off"]["consumer"] == 100.0
    assert tracing["cpu_us_per_request_on"]["consumer"] == 200.0
    assert tracing["cpu_us_per_request_added"] == {
        "consumer": 100.0,
        "stream": 5.0,
        "broker": 10.0,
        "postgres": 0.0,
        "load generator": None,
        "the four": 115.0,
    }
    assert (tracing["latency_p99_ms_off"], tracing["latency_p99_ms_on"]) == (20.0, 30.0)
    assert tracing["trace_export"] == {"exports": 9, "bytes": 812_000}
    assert "otlp" in tracing["exporter"]
    phases = figures["phases"]
    assert isinstance(phases, dict)
    assert set(phases) == {"latency", "latency_traced"}
    summary = "\n".join(report.summary())
    assert "tracing at 1,000/s, CPU µs per request, off -> on (added)" in summary
    assert "consumer            100.0 ->    200.0 (+100.0)" in summary
    assert "OTLP exports 9 (812,000 bytes)" in summary


def test_without_tracing_the_report_has_no_tracing_figures() -> None:
    report = Report(run_id="r1", cores=2, options=BenchOptions(), latency_phase=steady({}))
    assert report.as_json()["tracing"] is None
    assert not [line for line in report.summary() if "tracing" in line]
