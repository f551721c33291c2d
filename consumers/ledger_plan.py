"""What the idempotency ledger's maintenance does at a given time, and when it runs next: pure.

`publish_requests` is range-partitioned by `first_processed_at`. The promise kept here: a
row is kept at least IDEMPOTENCY_RETENTION and at most the retention plus one
IDEMPOTENCY_PARTITION_INTERVAL, and no row goes to the default partition while maintenance
runs. Partitions cover one interval each, counted from the epoch, and go whole once their end
is past the retention; maintenance runs on the moment one does, and at least twice per
interval, so that the current interval and the next two are always covered.

Partitions of another length (migration 0006 made day-long ones, whatever the setting;
an operator may shorten the interval) are kept while no longer than the interval. A longer
one is cut at the start of the current interval: what it holds from then on moves to
partitions of the interval, and it keeps only the past, whose rows are deleted one by one as
they pass the retention, since it would go whole too late.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

TABLE = "publish_requests"
# Partitions ready beyond the current interval: with maintenance at least twice per interval,
# four runs can fail in a row before a row lands in the default partition.
AHEAD = 2
# How often maintenance runs: twice per interval, within these bounds. An hour for long
# intervals: the DDL is brief but takes a lock on the ledger, and hourly is how it always ran
# with daily partitions. Half a second at least: shorter intervals are refused by the settings.
MAX_PERIOD = timedelta(hours=1)
MIN_PERIOD = timedelta(milliseconds=500)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Bounds:
    """A partition's range [lo, hi); None is MINVALUE for lo, MAXVALUE for hi."""

    lo: datetime | None
    hi: datetime | None

    def longer_than(self, interval: timedelta) -> bool:
        return self.lo is None or self.hi is None or self.hi - self.lo > interval


@dataclass(frozen=True)
class Partition:
    name: str
    bounds: Bounds


@dataclass(frozen=True)
class Retire:
    """A partition longer than the interval that reaches into the current one: its rows from
    the current interval on move to partitions of the interval; it stays for `keep` (its past)
    if rows remain there, else it goes. `keep` None: it had no past (wholly current or ahead)."""

    name: str
    bounds: Bounds
    keep: Bounds | None


@dataclass(frozen=True)
class Plan:
    create: tuple[Bounds, ...]
    drop: tuple[str, ...]
    retire: tuple[Retire, ...]
    # Partitions longer than the interval: their rows before the horizon are deleted.
    purge: tuple[str, ...]
    # Rows decided before this are past the retention.
    horizon: datetime
    # The ranges there will be once it is carried out (a partition cut kept, whether or not
    # rows remain in it).
    layout: tuple[Bounds, ...] = ()


def interval_start(at: datetime, interval: timedelta) -> datetime:
    """The start of the interval holding `at`, intervals counted from the Unix epoch (UTC):
    a one-day interval starts at midnight UTC."""
    return _EPOCH + ((at - _EPOCH) // interval) * interval


def partition_name(lo: datetime) -> str:
    lo = lo.astimezone(UTC)
    suffix = lo.strftime("%Y%m%dt%H%M%S") + (f"{lo.microsecond:06d}" if lo.microsecond else "")
    return f"{TABLE}_p{suffix}"


def _overlaps(a: Bounds, b: Bounds) -> bool:
    a_before_b_ends = b.hi is None or a.lo is None or a.lo < b.hi
    b_before_a_ends = a.hi is None or b.lo is None or b.lo < a.hi
    return a_before_b_ends and b_before_a_ends


def _uncovered(window: Bounds, covered: Sequence[Bounds]) -> list[Bounds]:
    """The parts of `window` (finite) no range of `covered` holds."""
    assert window.lo is not None
    assert window.hi is not None
    pieces = [window]
    for taken in covered:
        rest: list[Bounds] = []
        for piece in pieces:
            assert piece.lo is not None
            assert piece.hi is not None
            if not _overlaps(piece, taken):
                rest.append(piece)
                continue
            if taken.lo is not None and taken.lo > piece.lo:
                rest.append(Bounds(piece.lo, taken.lo))
            if taken.hi is not None and taken.hi < piece.hi:
                rest.append(Bounds(taken.hi, piece.hi))
        pieces = rest
    return sorted(pieces, key=lambda b: b.lo or _EPOCH)


def _starts_before(bounds: Bounds, at: datetime) -> bool:
    return bounds.lo is None or bounds.lo < at


def plan(
    existing: Sequence[Partition],
    now: datetime,
    interval: timedelta,
    retention: timedelta,
    ahead: int = AHEAD,
) -> Plan:
    """Drop every partition whose whole range ends at or before `now - retention`; cut those
    longer than the interval at the start of the current one; create what the current
    interval and the `ahead` next ones lack (partitions no longer than the interval, from
    before a change of setting, are kept and only the gaps between them filled), and which
    partitions' rows past the retention go one by one."""
    horizon = now - retention
    start = interval_start(now, interval)
    drop: list[str] = []
    retire: list[Retire] = []
    purge: list[str] = []
    covered: list[Bounds] = []
    for partition in existing:
        bounds = partition.bounds
        if bounds.hi is not None and bounds.hi <= horizon:
            drop.append(partition.name)
            continue
        if not bounds.longer_than(interval):
            covered.append(bounds)
            continue
        if bounds.hi is None or bounds.hi > start:
            keep = Bounds(bounds.lo, start) if _starts_before(bounds, start) else None
            retire.append(Retire(partition.name, bounds, keep))
            bounds_left = keep
        else:
            bounds_left = bounds
        if bounds_left is not None:
            covered.append(bounds_left)
            if _starts_before(bounds_left, horizon):
                purge.append(partition.name)
    create: list[Bounds] = []
    for index in range(ahead + 1):
        window = Bounds(start + index * interval, start + (index + 1) * interval)
        for piece in _uncovered(window, covered):
            create.append(piece)
            covered.append(piece)
    return Plan(tuple(create), tuple(drop), tuple(retire), tuple(purge), horizon, tuple(covered))


def maintenance_period(interval: timedelta) -> timedelta:
    """The longest wait between two runs: half the interval, within MIN_PERIOD..MAX_PERIOD."""
    return max(MIN_PERIOD, min(interval / 2, MAX_PERIOD))


def next_maintenance(
    now: datetime, interval: timedelta, retention: timedelta, layout: Sequence[Bounds]
) -> datetime:
    """When to run next: within a period, and no later than the moment the next partition of
    `layout` passes the retention, so that it goes on time rather than up to a period late
    (a partition [lo, hi) goes at hi + retention: its first row is then kept the retention
    plus its length, at most the interval)."""
    due = [b.hi + retention for b in layout if b.hi is not None and b.hi + retention > now]
    return min([now + maintenance_period(interval), *due])
