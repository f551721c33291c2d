"""Which partitions of the ledger to create and drop for a given time: `consumers.ledger.plan`."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from consumers.ledger import Bounds, Partition, interval_start, partition_name, plan

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


def test_after_a_change_of_interval_only_the_gaps_are_filled() -> None:
    # Daily partitions for today and tomorrow; an hourly interval just before midnight wants
    # this hour, the next (covered) and the one after midnight of the day after (uncovered).
    existing = _daily(MIDNIGHT, 2)
    late = MIDNIGHT + 2 * DAY - timedelta(minutes=90)
    work = plan(existing, late, timedelta(hours=1), RETENTION)
    assert work.create == (Bounds(MIDNIGHT + 2 * DAY, MIDNIGHT + 2 * DAY + timedelta(hours=1)),)


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
