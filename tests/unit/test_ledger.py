"""Which partitions of the ledger to create, cut and drop for a given time, and when to run
next: `consumers.ledger_plan`, with a model of the ledger run through time on its schedule."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.ledger_plan import (
    AHEAD,
    Bounds,
    Partition,
    Retire,
    interval_start,
    maintenance_period,
    next_maintenance,
    partition_name,
    plan,
)

DAY = timedelta(days=1)
RETENTION = timedelta(days=8)
NOW = datetime(2026, 12, 2, 15, 30, tzinfo=UTC)
MIDNIGHT = datetime(2026, 12, 2, tzinfo=UTC)


def _daily(first: datetime, count: int) -> list[Partition]:
    return [
        Partition(partition_name(first + i * DAY), Bounds(first + i * DAY, first + (i + 1) * DAY))
        for i in range(count)
    ]


def test_an_empty_ledger_gets_the_current_interval_and_the_next_two() -> None:
    work = plan([], NOW, DAY, RETENTION)
    days = [MIDNIGHT + i * DAY for i in range(4)]
    assert work.create == tuple(Bounds(lo, hi) for lo, hi in itertools.pairwise(days))
    assert work.drop == ()
    assert work.horizon == NOW - RETENTION


def test_nothing_to_do_when_the_partitions_are_there() -> None:
    work = plan(_daily(MIDNIGHT - 5 * DAY, 8), NOW, DAY, RETENTION)
    assert (work.create, work.drop) == ((), ())


def test_a_partition_is_dropped_only_once_its_whole_range_is_past_the_retention() -> None:
    existing = _daily(MIDNIGHT - 10 * DAY, 13)
    work = plan(existing, NOW, DAY, RETENTION)
    # Horizon 2026-11-24 15:30: the partitions ending by then go, the one holding it stays.
    assert work.drop == (
        "publish_requests_p20261122t000000",
        "publish_requests_p20261123t000000",
    )
    assert work.create == ()


def test_the_partition_of_rows_from_before_partitioning_goes_after_its_upper_bound() -> None:
    before = Partition("publish_requests_before", Bounds(None, MIDNIGHT))
    kept = plan([before], MIDNIGHT + RETENTION - timedelta(seconds=1), DAY, RETENTION)
    gone = plan([before], MIDNIGHT + RETENTION, DAY, RETENTION)
    assert kept.drop == ()
    assert gone.drop == ("publish_requests_before",)


def test_after_the_interval_is_shortened_a_longer_partition_is_cut_at_the_current_interval() -> (
    None
):
    # Daily partitions for today and tomorrow; an hourly interval 90 min before the end of
    # tomorrow cuts tomorrow's at the current hour and fills the hours from there.
    existing = _daily(MIDNIGHT, 2)
    hour = timedelta(hours=1)
    late = MIDNIGHT + 2 * DAY - timedelta(minutes=90)
    start = MIDNIGHT + 2 * DAY - 2 * hour
    work = plan(existing, late, hour, RETENTION)
    assert work.retire == (
        Retire(existing[1].name, existing[1].bounds, Bounds(MIDNIGHT + DAY, start)),
    )
    assert work.create == tuple(Bounds(start + i * hour, start + (i + 1) * hour) for i in range(3))
    assert work.drop == ()
    assert work.purge == ()  # nothing of them is past the retention yet


def test_the_first_migrate_follows_a_seconds_long_interval() -> None:
    """Migration 0006 made a partition for rows from before it and one per day from today;
    the first maintenance, with a 20 s interval, leaves no partition longer than 20 s
    reaching past the current interval."""
    before = Partition("publish_requests_before", Bounds(None, MIDNIGHT))
    days = _daily(MIDNIGHT, 3)
    interval, retention = timedelta(seconds=20), timedelta(seconds=60)
    work = plan([before, *days], NOW, interval, retention)
    assert work.retire == (
        Retire(days[0].name, days[0].bounds, Bounds(MIDNIGHT, NOW)),
        Retire(days[1].name, days[1].bounds, None),
        Retire(days[2].name, days[2].bounds, None),
    )
    assert work.create == tuple(
        Bounds(NOW + i * interval, NOW + (i + 1) * interval) for i in range(3)
    )
    # Rows from before partitioning are all past the retention; today's go row by row.
    assert work.drop == ("publish_requests_before",)
    assert work.purge == (days[0].name,)


def test_a_shorter_retention_drops_at_once_what_it_no_longer_keeps() -> None:
    existing = _daily(MIDNIGHT - 5 * DAY, 8)
    work = plan(existing, NOW, DAY, timedelta(days=2))
    assert work.drop == tuple(p.name for p in existing[:3])


def test_a_longer_interval_fills_around_shorter_partitions() -> None:
    hour = timedelta(hours=1)
    existing = [Partition("p", Bounds(MIDNIGHT + 3 * hour, MIDNIGHT + 4 * hour))]
    work = plan(existing, NOW, DAY, RETENTION, ahead=0)
    assert work.create == (
        Bounds(MIDNIGHT, MIDNIGHT + 3 * hour),
        Bounds(MIDNIGHT + 4 * hour, MIDNIGHT + DAY),
    )


def test_intervals_are_counted_from_the_epoch_in_utc() -> None:
    assert interval_start(NOW, DAY) == MIDNIGHT
    assert interval_start(NOW, timedelta(hours=6)) == MIDNIGHT + timedelta(hours=12)
    second = datetime(2026, 12, 2, 15, 30, 7, 400_000, tzinfo=UTC)
    assert interval_start(second, timedelta(seconds=1)) == second.replace(microsecond=0)


def test_partition_names_sort_by_time_and_say_it_in_utc() -> None:
    assert partition_name(MIDNIGHT) == "publish_requests_p20261202t000000"
    assert partition_name(MIDNIGHT + timedelta(milliseconds=500)) == (
        "publish_requests_p20261202t000000500000"
    )
    assert len(partition_name(NOW)) < 63


def test_maintenance_runs_twice_per_interval_and_at_most_an_hour_apart() -> None:
    assert maintenance_period(timedelta(seconds=20)) == timedelta(seconds=10)
    assert maintenance_period(timedelta(hours=1)) == timedelta(minutes=30)
    assert maintenance_period(DAY) == timedelta(hours=1)


def test_the_next_run_is_on_the_moment_a_partition_passes_the_retention() -> None:
    interval, retention = timedelta(seconds=20), timedelta(seconds=65)
    at = datetime(2026, 12, 2, 15, 30, 3, tzinfo=UTC)
    layout = [Bounds(at - timedelta(seconds=63), at - timedelta(seconds=43)), Bounds(at, None)]
    # The first partition passes the retention at `at` + 22 s; the period of 10 s comes first.
    assert next_maintenance(at, interval, retention, layout) == at + timedelta(seconds=10)
    later = at + timedelta(seconds=15)
    assert next_maintenance(later, interval, retention, layout) == at + timedelta(seconds=22)


# A model of the ledger, to run the plan through time: each partition's rows (their times),
# and the default partition's, changed as maintenance_ledger changes the tables.
Rows = dict[str, tuple[Bounds, list[datetime]]]


def _covers(bounds: Bounds, at: datetime) -> bool:
    return (bounds.lo is None or bounds.lo <= at) and (bounds.hi is None or at < bounds.hi)


class _Ledger:
    def __init__(self, partitions: list[Partition]) -> None:
        self.partitions: Rows = {p.name: (p.bounds, []) for p in partitions}
        self.default: list[datetime] = []

    def insert(self, at: datetime) -> None:
        for bounds, rows in self.partitions.values():
            if _covers(bounds, at):
                rows.append(at)
                return
        self.default.append(at)

    def rows(self) -> list[datetime]:
        return [at for _, rows in self.partitions.values() for at in rows] + self.default

    def _attach(self, name: str, bounds: Bounds, rows: list[datetime]) -> None:
        assert name not in self.partitions
        for other, _ in self.partitions.values():
            assert (
                other.hi is None
                or bounds.lo is None
                or other.hi <= bounds.lo
                or (bounds.hi is not None and other.lo is not None and bounds.hi <= other.lo)
            ), f"{bounds} overlaps {other}"
        moved = [at for at in self.default if _covers(bounds, at)]
        self.default = [at for at in self.default if not _covers(bounds, at)]
        self.partitions[name] = (bounds, rows + moved)

    def maintain(self, now: datetime, interval: timedelta, retention: timedelta) -> None:
        existing = [Partition(name, bounds) for name, (bounds, _) in self.partitions.items()]
        work = plan(existing, now, interval, retention)
        for name in work.drop:
            del self.partitions[name]
        aside = {r.name: self.partitions.pop(r.name)[1] for r in work.retire}
        for bounds in work.create:
            assert bounds.lo is not None
            self._attach(partition_name(bounds.lo), bounds, [])
        for retiring in work.retire:
            keep = retiring.keep
            kept = [at for at in aside[retiring.name] if keep is not None and _covers(keep, at)]
            for at in aside[retiring.name]:
                if at not in kept:
                    self.insert(at)
            if keep is not None and kept:
                self._attach(retiring.name, keep, kept)
        for name in work.purge:
            if name in self.partitions:
                bounds, rows = self.partitions[name]
                self.partitions[name] = (bounds, [at for at in rows if at >= work.horizon])
        self.default = [at for at in self.default if at >= work.horizon]


def _migration_0006(today: datetime) -> list[Partition]:
    return [Partition("publish_requests_before", Bounds(None, today)), *_daily(today, 3)]


seconds = st.integers(min_value=1, max_value=600).map(lambda s: timedelta(seconds=s))


@settings(max_examples=60, deadline=None)
@given(
    first=st.tuples(seconds, seconds),
    then=st.tuples(seconds, seconds),
    offset=st.integers(min_value=0, max_value=86_399),
)
def test_rows_are_kept_at_most_the_retention_plus_one_interval_through_a_change(
    first: tuple[timedelta, timedelta],
    then: tuple[timedelta, timedelta],
    offset: int,
) -> None:
    """From migration 0006's day partitions, maintenance on its schedule with one interval
    and retention, then with others (a live ledger reconfigured): before every run no row is
    older than the retention plus the interval (plus a period while rows of a partition cut
    short go one by one), and no row ever lands in the default partition."""
    now = MIDNIGHT + timedelta(seconds=offset)
    ledger = _Ledger(_migration_0006(MIDNIGHT))
    for interval, retention in (first, then):
        step = (interval + retention) / 40
        end = now + 3 * (interval + retention)
        ledger.maintain(now, interval, retention)
        # One interval's worth of runs after a change, for partitions cut short to empty.
        settled = now + interval + maintenance_period(interval)
        while now < end:
            layout = [bounds for bounds, _ in ledger.partitions.values()]
            due = next_maintenance(now, interval, retention, layout)
            while now < due:
                ledger.insert(now)
                now = min(now + step, due)
            assert ledger.default == [], "a row landed in the default partition"
            oldest = min(ledger.rows(), default=now)
            if now >= settled:
                assert now - oldest <= retention + interval
            ledger.maintain(now, interval, retention)
        # Every interval is covered from now to AHEAD intervals on.
        start = interval_start(now, interval)
        for index in range(AHEAD + 1):
            at = start + index * interval
            assert any(_covers(b, at) for b, _ in ledger.partitions.values())
