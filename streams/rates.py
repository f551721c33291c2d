"""Outcome counts and a latency sketch over a sliding window of processing time.

The window is cut into `SLOTS_PER_WINDOW` fixed slots of `window / SLOTS_PER_WINDOW` seconds.
Each slot holds five counters, a DDSketch of `latency_ms` and, per source partition, the
highest offset folded into it. The window at `now` is the merge of the slots whose start lies
within the last `window_seconds`: it slides by one slot at a time, and memory is bounded by
the slot count times the sketch's bin count, whatever the traffic.

An outcome lands in the slot of its `processed_at` (the consumer's processing time), so a
stream that replays a backlog counts each outcome where it happened, not all at once now.
The per-slot offsets make folding idempotent: a record redelivered after a restart (Kafka's
at-least-once) is recognised and not counted twice.

Across workers the window is folded in two phases (Flink's local-global aggregation): each
worker folds the outcomes of the partitions it holds into *partials*, one slot per (source
partition, slot), and the evaluator merges the latest partial of every partition into the
window. A newer partial of a (partition, slot) replaces the one before it, never adds to it:
which one is newer is told by the offset it has folded up to, so a partial sent again after a
restart or a rebalance can never count an outcome twice.

Everything here is pure: values in, values out; the stream stores the encoded slots.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple, Protocol

import ddsketch.pb.ddsketch_pb2 as sketch_pb
from ddsketch import DDSketch
from ddsketch.ddsketch import BaseDDSketch
from ddsketch.pb.proto import DDSketchProto
from google.protobuf.message import DecodeError

from schemas.events import Status

# What the stream asks the time of: the wall clock in production, a hand-moved one in tests.
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


SLOTS_PER_WINDOW = 60
SKETCH_RELATIVE_ACCURACY = 0.01
# Latencies are clamped into this range before they enter a sketch, which bounds its bins:
# log(MAX / MIN) / log(gamma) is about 1,030 bins at 1% accuracy, i.e. a few KiB per slot.
LATENCY_MIN_MS = 0.1
LATENCY_MAX_MS = 86_400_000.0
_ENCODING_VERSION = 1


@dataclass(frozen=True)
class Counts:
    """Outcomes in a slot or a window, by the categories the alert rules divide."""

    all: int = 0
    failed: int = 0
    rejected: int = 0
    gated: int = 0
    retried: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            all=self.all + other.all,
            failed=self.failed + other.failed,
            rejected=self.rejected + other.rejected,
            gated=self.gated + other.gated,
            retried=self.retried + other.retried,
        )

    def ratio(self, part: int) -> float:
        return part / self.all if self.all else 0.0


def new_sketch() -> BaseDDSketch:
    return DDSketch(SKETCH_RELATIVE_ACCURACY)


def clamp_latency(latency_ms: float) -> float:
    if math.isnan(latency_ms):
        return LATENCY_MIN_MS
    return min(max(latency_ms, LATENCY_MIN_MS), LATENCY_MAX_MS)


class Outcome(Protocol):
    """What the window needs of an outcome (`schemas.events.OutcomeFacts`, or a whole one)."""

    @property
    def status(self) -> Status: ...
    @property
    def attempts(self) -> int: ...
    @property
    def latency_ms(self) -> float: ...
    @property
    def processed_at(self) -> datetime: ...


class Observed(NamedTuple):
    """One outcome as read from the outcomes topic, with where it was read (a tuple: one is
    made per outcome)."""

    partition: int
    offset: int
    outcome: Outcome


@dataclass(frozen=True)
class Slot:
    """A slot's aggregate. The sketch is never mutated once the slot is built."""

    counts: Counts = Counts()
    sketch: BaseDDSketch = field(default_factory=new_sketch)
    applied: Mapping[int, int] = field(default_factory=dict)

    def with_outcomes(self, observed: Iterable[Observed]) -> Slot:
        """This slot plus the outcomes it has not folded in yet (per-partition offsets)."""
        # Counts added in plain integers, not Counts objects: this loop runs once per outcome.
        c = self.counts
        total, failed, rejected, gated, retried = c.all, c.failed, c.rejected, c.gated, c.retried
        sketch = new_sketch()
        sketch.merge(self.sketch)
        add = sketch.add
        applied = dict(self.applied)
        for item in observed:
            if item.offset <= applied.get(item.partition, -1):
                continue
            applied[item.partition] = item.offset
            outcome = item.outcome
            status = outcome.status
            total += 1
            failed += status is Status.FAILED
            rejected += status is Status.REJECTED
            gated += status is Status.GATED
            retried += outcome.attempts > 1
            add(clamp_latency(outcome.latency_ms))
        return Slot(Counts(total, failed, rejected, gated, retried), sketch, applied)

    def supersedes(self, other: Slot, partition: int) -> bool:
        """Whether this partial of `partition` is at least as far along as `other`: partials of
        a (partition, slot) grow with the offsets folded, so the further one is the latest."""
        return self.applied.get(partition, -1) >= other.applied.get(partition, -1)

    def encode(self) -> bytes:
        proto = DDSketchProto.to_proto(self.sketch).SerializeToString()  # type: ignore[no-untyped-call]
        return json.dumps(
            {
                "v": _ENCODING_VERSION,
                "counts": self.counts.__dict__,
                "applied": {str(p): o for p, o in self.applied.items()},
                "sketch": base64.b64encode(proto).decode("ascii"),
            },
            separators=(",", ":"),
        ).encode("utf-8")

    @classmethod
    def decode(cls, data: bytes) -> Slot:
        """The slot `encode` wrote; ValueError for anything else."""
        try:
            body = json.loads(data)
            if body.get("v") != _ENCODING_VERSION:
                raise ValueError(f"unknown slot encoding {body.get('v')!r}")
            proto = sketch_pb.DDSketch()
            proto.ParseFromString(base64.b64decode(body["sketch"]))
            sketch = new_sketch()
            sketch.merge(DDSketchProto.from_proto(proto))  # type: ignore[no-untyped-call]
            return cls(
                counts=Counts(**body["counts"]),
                sketch=sketch,
                applied={int(p): int(o) for p, o in body["applied"].items()},
            )
        except (AttributeError, KeyError, TypeError, DecodeError) as error:
            raise ValueError(f"not an encoded slot: {error!r}") from error


def partial_key(partition: int, slot: int) -> str:
    """The key of a partial: its source partition, then its slot."""
    return f"{partition}:{slot}"


def parse_partial_key(key: str) -> tuple[int, int]:
    """(partition, slot) of a partial's key; ValueError when it is not one."""
    partition, sep, slot = key.partition(":")
    if not sep:
        raise ValueError(f"not a partial key: {key!r}")
    return int(partition), int(slot)


@dataclass(frozen=True)
class Geometry:
    """How a window of `window_seconds` is cut into slots."""

    window_seconds: float
    slots: int = SLOTS_PER_WINDOW

    @property
    def slot_seconds(self) -> float:
        return self.window_seconds / self.slots

    def slot_of(self, at: datetime) -> int:
        return math.floor(at.timestamp() / self.slot_seconds)

    def live(self, now: datetime) -> range:
        """The slots the window at `now` covers: the current one and the `slots - 1` before."""
        last = self.slot_of(now)
        return range(last - self.slots + 1, last + 1)

    def slot_start(self, slot: int) -> datetime:
        return datetime.fromtimestamp(slot * self.slot_seconds, UTC)


def fold(
    slots: Mapping[int, Slot], observed: Iterable[Observed], geometry: Geometry, now: datetime
) -> dict[int, Slot]:
    """The slots that `observed` changes, with their new values.

    Outcomes older than the window are dropped (they cannot affect any alert any more);
    outcomes stamped in the future (a skewed clock) count in the current slot.
    """
    live = geometry.live(now)
    by_slot: dict[int, list[Observed]] = {}
    for item in observed:
        slot = min(geometry.slot_of(item.outcome.processed_at), live.stop - 1)
        if slot in live:
            by_slot.setdefault(slot, []).append(item)
    return {slot: slots.get(slot, Slot()).with_outcomes(items) for slot, items in by_slot.items()}


def expired(slots: Iterable[int], geometry: Geometry, now: datetime) -> list[int]:
    """Slots that no window from `now` on will cover: the stream deletes them."""
    first = geometry.live(now).start
    return sorted(slot for slot in slots if slot < first)


@dataclass(frozen=True)
class Snapshot:
    """The window's aggregate at `window_end`."""

    window_start: datetime
    window_end: datetime
    counts: Counts
    p95_latency_ms: float

    @property
    def error_rate(self) -> float:
        return self.counts.ratio(self.counts.failed)

    @property
    def rejected_rate(self) -> float:
        return self.counts.ratio(self.counts.rejected)

    @property
    def gating_block_rate(self) -> float:
        return self.counts.ratio(self.counts.gated)

    @property
    def retry_rate(self) -> float:
        return self.counts.ratio(self.counts.retried)


def snapshot(slots: Iterable[tuple[int, Slot]], geometry: Geometry, now: datetime) -> Snapshot:
    """Merge the live slots, given as (slot, value) pairs, one per slot or one per partial:
    counts add up, sketches merge (p95 0.0 for an empty window)."""
    live = geometry.live(now)
    counts = Counts()
    sketch = new_sketch()
    for slot, value in slots:
        if slot in live:
            counts = counts + value.counts
            sketch.merge(value.sketch)
    p95 = sketch.get_quantile_value(0.95) if sketch.count else None
    return Snapshot(
        window_start=geometry.slot_start(live.start),
        window_end=now,
        counts=counts,
        p95_latency_ms=float(p95) if p95 is not None else 0.0,
    )
