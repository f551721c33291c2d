"""The bench chart's throughput series: a running mean in which empty seconds count."""

from __future__ import annotations

from ops.bench.report import rolling_mean


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
