"""The consumer's Prometheus metrics, on a registry passed in (never the global one)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 20, 30, 60)


@dataclass(frozen=True)
class ConsumerMetrics:
    outcomes: Counter
    attempts: Counter
    retries: Counter
    retried_outcomes: Counter
    dead_letters: Counter
    gating_blocks: Counter
    processing: Histogram
    end_to_end: Histogram
    batch_size: Histogram
    lag: Gauge
    paused: Gauge
    database_available: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> ConsumerMetrics:
        return cls(
            outcomes=Counter(
                "store_publish_outcomes_total",
                "Outcomes sent, by status and reason.",
                ["status", "reason"],
                registry=registry,
            ),
            attempts=Counter(
                "store_publish_attempts_total",
                "Database attempts made for requests.",
                registry=registry,
            ),
            retries=Counter(
                "store_publish_retries_total",
                "Attempts after the first (retries).",
                registry=registry,
            ),
            retried_outcomes=Counter(
                "store_publish_retried_outcomes_total",
                "Outcomes of requests that needed more than one attempt.",
                registry=registry,
            ),
            dead_letters=Counter(
                "store_publish_dead_letters_total",
                "Requests dead-lettered, by reason.",
                ["reason"],
                registry=registry,
            ),
            gating_blocks=Counter(
                "store_publish_gating_blocks_total",
                "Gated requests, by missing step.",
                ["step"],
                registry=registry,
            ),
            processing=Histogram(
                "store_publish_processing_duration_seconds",
                "From first receipt by the consumer to the outcome.",
                buckets=_LATENCY_BUCKETS,
                registry=registry,
            ),
            end_to_end=Histogram(
                "store_publish_end_to_end_latency_seconds",
                "From the request's occurred_at to the outcome.",
                buckets=_LATENCY_BUCKETS,
                registry=registry,
            ),
            batch_size=Histogram(
                "store_publish_batch_size_records",
                "Records per partition batch.",
                buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000),
                registry=registry,
            ),
            lag=Gauge(
                "store_publish_consumer_lag_records",
                "Records between the consumer's position and the partition's end.",
                ["partition"],
                registry=registry,
            ),
            paused=Gauge(
                "store_publish_paused", "1 while publishing is paused.", registry=registry
            ),
            database_available=Gauge(
                "store_publish_database_available",
                "0 while PostgreSQL does not answer.",
                registry=registry,
            ),
        )
