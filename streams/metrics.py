"""The rates stream's Prometheus gauges, on a registry passed in (never the global one)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

from streams.alerts import Evaluation, Phase
from streams.rates import Snapshot


@dataclass(frozen=True)
class StreamMetrics:
    outcomes: Counter
    skipped: Counter
    invalid: Counter
    invalid_partials: Counter
    fetches: Counter
    evaluating: Gauge
    window_outcomes: Gauge
    error_rate: Gauge
    rejected_rate: Gauge
    gating_block_rate: Gauge
    retry_rate: Gauge
    p95_latency: Gauge
    alert_firing: Gauge
    alert_pending: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> StreamMetrics:
        def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
            return Gauge(name, doc, list(labels), registry=registry)

        def counter(name: str, doc: str) -> Counter:
            return Counter(name, doc, registry=registry)

        return cls(
            outcomes=counter(
                "store_publish_stream_outcomes_total", "Outcomes folded into the window."
            ),
            skipped=counter(
                "store_publish_stream_skipped_outcomes_total",
                "Outcomes not counted: processed before the window, or redelivered and "
                "already counted (recognised by their offset).",
            ),
            invalid=counter(
                "store_publish_stream_invalid_outcomes_total",
                "Records on the outcomes topic that are not a PublishOutcome.",
            ),
            invalid_partials=counter(
                "store_publish_stream_invalid_partials_total",
                "Records on the stream's partials topic that are not a partial (a bug).",
            ),
            fetches=counter(
                "store_publish_stream_fetches_total",
                "Fetches of outcomes folded, one per partition a fetch held outcomes of: the "
                "stream's wake-ups (STREAM_FETCH_MIN_BYTES, STREAM_FETCH_MAX_WAIT_MS).",
            ),
            evaluating=gauge(
                "store_publish_stream_evaluating",
                "1 in the worker that merges the window and evaluates the alert rules; the "
                "window and alert gauges are that worker's.",
            ),
            window_outcomes=gauge(
                "store_publish_window_outcomes", "Outcomes in the current sliding window."
            ),
            error_rate=gauge(
                "store_publish_rate_error_ratio", "failed / all over the sliding window."
            ),
            rejected_rate=gauge(
                "store_publish_rate_rejected_ratio", "rejected / all over the sliding window."
            ),
            gating_block_rate=gauge(
                "store_publish_rate_gating_block_ratio", "gated / all over the sliding window."
            ),
            retry_rate=gauge(
                "store_publish_rate_retry_ratio",
                "Outcomes with attempts > 1 / all over the sliding window.",
            ),
            p95_latency=gauge(
                "store_publish_latency_p95_seconds",
                "p95 of latency_ms over the sliding window, in seconds (DDSketch, 1%).",
            ),
            alert_firing=gauge(
                "store_publish_alert_firing", "1 while the alert is firing.", ("alert",)
            ),
            alert_pending=gauge(
                "store_publish_alert_pending",
                "1 while the alert's condition holds but not yet for its duration.",
                ("alert",),
            ),
        )

    def observe(self, window: Snapshot, evaluations: Iterable[Evaluation]) -> None:
        self.window_outcomes.set(window.counts.all)
        self.error_rate.set(window.error_rate)
        self.rejected_rate.set(window.rejected_rate)
        self.gating_block_rate.set(window.gating_block_rate)
        self.retry_rate.set(window.retry_rate)
        self.p95_latency.set(window.p95_latency_ms / 1000.0)
        for evaluation in evaluations:
            name = evaluation.rule.name
            self.alert_firing.labels(name).set(int(evaluation.state.phase is Phase.FIRING))
            self.alert_pending.labels(name).set(int(evaluation.state.phase is Phase.PENDING))
