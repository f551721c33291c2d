"""The sliding window: counts by category, p95 from the sketch, bounded memory, idempotence."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from schemas.events import PublishOutcome, Status
from streams.rates import (
    LATENCY_MAX_MS,
    SKETCH_RELATIVE_ACCURACY,
    SLOTS_PER_WINDOW,
    Counts,
    Geometry,
    Observed,
    Slot,
    expired,
    fold,
    snapshot,
)
from tests.helpers.stream import outcome as made

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def outcome(
    status: Status = Status.PUBLISHED,
    *,
    at: datetime = T0,
    latency_ms: float = 100.0,
    attempts: int = 1,
) -> PublishOutcome:
    return made(status, at=at, latency_ms=latency_ms, attempts=attempts)


class Feed:
    """Offsets per partition, as a topic would assign them."""

    def __init__(self) -> None:
        self.next_offset: dict[int, int] = {}

    def __call__(self, *outcomes: PublishOutcome, partition: int = 0) -> list[Observed]:
        observed = []
        for item in outcomes:
            offset = self.next_offset.get(partition, 0)
            self.next_offset[partition] = offset + 1
            observed.append(Observed(partition, offset, item))
        return observed


def apply(slots: dict[int, Slot], changed: dict[int, Slot]) -> dict[int, Slot]:
    return {**slots, **changed}


def test_window_counts_every_category_the_rules_divide() -> None:
    geometry, feed = Geometry(60.0), Feed()
    batch = feed(
        outcome(Status.PUBLISHED),
        outcome(Status.ALREADY_PUBLISHED),
        outcome(Status.FAILED, attempts=3),
        outcome(Status.REJECTED, attempts=0),
        outcome(Status.GATED),
        outcome(Status.PUBLISHED, attempts=2),
    )
    slots = fold({}, batch, geometry, T0)
    window = snapshot(slots.items(), geometry, T0)
    assert window.counts == Counts(all=6, failed=1, rejected=1, gated=1, retried=2)
    assert window.error_rate == pytest.approx(1 / 6)
    assert window.retry_rate == pytest.approx(2 / 6)
    assert window.gating_block_rate == pytest.approx(1 / 6)


def test_outcomes_leave_the_window_once_it_slides_past_them() -> None:
    geometry, feed = Geometry(60.0), Feed()
    slots = fold({}, feed(outcome(Status.FAILED, at=T0)), geometry, T0)
    half = T0 + timedelta(seconds=30)
    slots = apply(slots, fold(slots, feed(outcome(at=half)), geometry, half))
    assert snapshot(slots.items(), geometry, T0 + timedelta(seconds=59)).counts.all == 2
    later = snapshot(slots.items(), geometry, T0 + timedelta(seconds=61))
    assert later.counts == Counts(all=1)
    assert expired(slots, geometry, T0 + timedelta(seconds=61)) == [geometry.slot_of(T0)]


def test_outcomes_processed_before_the_window_are_not_counted() -> None:
    geometry, feed = Geometry(60.0), Feed()
    old = outcome(Status.FAILED, at=T0 - timedelta(minutes=5))
    assert fold({}, feed(old), geometry, T0) == {}


def test_outcomes_stamped_in_the_future_count_now() -> None:
    geometry, feed = Geometry(60.0), Feed()
    ahead = outcome(at=T0 + timedelta(hours=1))
    slots = fold({}, feed(ahead), geometry, T0)
    assert list(slots) == [geometry.slot_of(T0)]


def test_a_redelivered_record_is_counted_once() -> None:
    geometry, feed = Geometry(60.0), Feed()
    batch = feed(*(outcome(Status.FAILED) for _ in range(5)))
    slots = fold({}, batch, geometry, T0)
    # After a restart, Kafka redelivers from the last committed offset: part of the batch.
    again = fold(slots, [*batch[2:], *feed(outcome())], geometry, T0)
    window = snapshot(apply(slots, again).items(), geometry, T0)
    assert window.counts == Counts(all=6, failed=5)


def test_offsets_are_tracked_per_partition() -> None:
    geometry, feed = Geometry(60.0), Feed()
    slots = fold({}, feed(outcome(), outcome(), partition=0), geometry, T0)
    slots = apply(slots, fold(slots, feed(outcome(), partition=1), geometry, T0))
    assert snapshot(slots.items(), geometry, T0).counts.all == 3


def test_p95_is_within_the_sketch_accuracy() -> None:
    geometry, feed = Geometry(300.0), Feed()
    rng = random.Random(7)
    latencies = [rng.lognormvariate(6.0, 1.5) for _ in range(20_000)]
    slots: dict[int, Slot] = {}
    for i in range(0, len(latencies), 500):
        at = T0 + timedelta(seconds=i / 100)
        chunk = feed(*(outcome(at=at, latency_ms=v) for v in latencies[i : i + 500]))
        slots = apply(slots, fold(slots, chunk, geometry, at))
    window = snapshot(slots.items(), geometry, T0 + timedelta(seconds=200))
    exact = sorted(latencies)[round(0.95 * (len(latencies) - 1))]
    assert window.counts.all == len(latencies)
    assert window.p95_latency_ms == pytest.approx(exact, rel=2 * SKETCH_RELATIVE_ACCURACY)


def test_an_empty_window_has_no_rates_and_no_latency() -> None:
    window = snapshot([], Geometry(60.0), T0)
    assert window.counts == Counts()
    assert (window.error_rate, window.retry_rate, window.p95_latency_ms) == (0.0, 0.0, 0.0)


def test_memory_stays_bounded_whatever_the_traffic() -> None:
    geometry, feed = Geometry(10.0), Feed()
    rng = random.Random(11)
    slots: dict[int, Slot] = {}
    now = T0
    for step in range(600):
        now = T0 + timedelta(seconds=step * 0.1)
        # Latencies over many orders of magnitude, negatives and absurd values included.
        batch = feed(
            *(
                outcome(at=now, latency_ms=rng.choice((-5.0, 0.0, 1e12)) * rng.random())
                for _ in range(20)
            ),
            *(outcome(at=now, latency_ms=10 ** rng.uniform(-4, 9)) for _ in range(20)),
        )
        slots = apply(slots, fold(slots, batch, geometry, now))
        for slot in expired(slots, geometry, now):
            del slots[slot]
        assert len(slots) <= SLOTS_PER_WINDOW
    largest = max(len(slot.encode()) for slot in slots.values())
    assert largest < 32 * 1024
    assert snapshot(slots.items(), geometry, now).p95_latency_ms <= LATENCY_MAX_MS * 1.02


def test_a_slot_survives_encoding() -> None:
    geometry, feed = Geometry(60.0), Feed()
    batch = feed(*(outcome(Status.GATED, latency_ms=float(v)) for v in range(1, 101)))
    (slot,) = fold({}, batch, geometry, T0).values()
    decoded = Slot.decode(slot.encode())
    assert decoded.counts == slot.counts
    assert decoded.applied == {0: 99}
    assert decoded.sketch.get_quantile_value(0.95) == pytest.approx(
        slot.sketch.get_quantile_value(0.95)
    )
