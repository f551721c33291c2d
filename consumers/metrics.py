"""The consumer's Prometheus metrics, on a registry passed in (never the global one)."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from schemas.events import Status

if TYPE_CHECKING:
    from consumers.results import Result

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 20, 30, 60)
# A poll's steps take milliseconds at low rates and seconds at 5,000-record polls.
_STEP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5)


def observe_all(histogram: Histogram, values: Sequence[float]) -> None:
    """`histogram.observe(value)` for each value, with each bucket and the sum added to once:
    two observations a record took 3.7 µs of a flooded consumer's 80 to 150 per request.
    Relies on prometheus_client's `Histogram` internals (`_upper_bounds`, `_buckets`,
    `_sum`); `tests/unit/test_consumer_metrics.py` holds it to `observe`."""
    if not values:
        return
    bounds = histogram._upper_bounds  # ascending, the last +Inf
    # NaN is in no bucket (`observe` compares it with each bound), yet in the sum.
    counts: Tally[int] = Tally(bisect_left(bounds, v) for v in values if not math.isnan(v))
    histogram._sum.inc(sum(values))
    for index, count in counts.items():
        histogram._buckets[index].inc(count)


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
    poll_steps: Histogram
    lag: Gauge
    paused: Gauge
    database_available: Gauge
    database_faults: Counter
    ledger_partitions_created: Counter
    ledger_partitions_dropped: Counter
    ledger_maintenance_runs: Counter

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
            poll_steps=Histogram(
                "store_publish_consumer_poll_step_seconds",
                "How long each step of a poll took: decide (its database transactions), wait "
                "(for the previous poll's Kafka transaction), commit (its own).",
                ["step"],
                buckets=_STEP_BUCKETS,
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
                "0 while PostgreSQL does not answer or answers with a fault.",
                registry=registry,
            ),
            database_faults=Counter(
                "store_publish_database_faults_total",
                "Polls held back for a database fault (not the requests'), by SQLSTATE.",
                ["sqlstate"],
                registry=registry,
            ),
            ledger_partitions_created=Counter(
                "store_publish_ledger_partitions_created_total",
                "Partitions of the idempotency ledger created ahead by maintenance.",
                registry=registry,
            ),
            ledger_partitions_dropped=Counter(
                "store_publish_ledger_partitions_dropped_total",
                "Partitions of the idempotency ledger dropped past the retention.",
                registry=registry,
            ),
            ledger_maintenance_runs=Counter(
                "store_publish_ledger_maintenance_runs_total",
                "Runs of the idempotency ledger's maintenance, by result (ok, failed).",
                ["result"],
                registry=registry,
            ),
        )

    def observe(self, results: Sequence[Result]) -> None:
        """A committed batch: counters once per label set, each histogram bucket once."""
        outcomes: Tally[tuple[str, str]] = Tally()
        dead_letters: Tally[str] = Tally()
        gating_blocks: Tally[str] = Tally()
        processing: list[float] = []
        end_to_end: list[float] = []
        attempts = retries = retried = 0
        for result in results:
            outcome = result.outcome
            outcomes[outcome.status.value, outcome.reason.value if outcome.reason else ""] += 1
            if result.repeated:
                continue
            attempts += outcome.attempts
            if outcome.attempts > 1:
                retries += outcome.attempts - 1
                retried += 1
            if result.dead_letter is not None and outcome.reason is not None:
                dead_letters[outcome.reason.value] += 1
            if outcome.status is Status.GATED:
                gating_blocks.update(outcome.missing_steps)
            processing.append(outcome.processing_ms / 1000)
            end_to_end.append(max(outcome.latency_ms, 0) / 1000)
        observe_all(self.processing, processing)
        observe_all(self.end_to_end, end_to_end)
        for (status, reason), count in outcomes.items():
            self.outcomes.labels(status, reason).inc(count)
        for reason, count in dead_letters.items():
            self.dead_letters.labels(reason).inc(count)
        for step, count in gating_blocks.items():
            self.gating_blocks.labels(step).inc(count)
        self.attempts.inc(attempts)
        self.retries.inc(retries)
        self.retried_outcomes.inc(retried)
