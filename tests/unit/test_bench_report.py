"""The bench figures: the chart's running mean, in which empty seconds count, and the
stream's lag, time to zero and window delay read from the lag samples."""

from __future__ import annotations

from ops.bench.chart import rolling_mean
from ops.bench.figures import PhaseFigures
from ops.bench.probes import LagSample


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
