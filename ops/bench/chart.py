"""The bench's PNG chart: throughput per second of each phase, and the lags over time."""

from __future__ import annotations

import math
from pathlib import Path

from ops.bench.report import Report

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
    for phase in (report.pipeline, report.scale_out, report.latency_phase):
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
