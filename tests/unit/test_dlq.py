"""The on-call tools' decisions, without services: filters, replay verdicts, stats, lag."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ops.cli.switch import operator_name
from ops.oncall.dead_letters import DeadLetter, Filters, latest_by_request, parse_moment, select
from ops.oncall.render import decoded_value, safe
from ops.oncall.replay import ReplayVerdict, plan_replay, replay_headers
from ops.oncall.stats import dead_letter_stats
from ops.oncall.status import consumer_lag
from ops.oncall.topic_reader import RawRecord
from schemas.dead_letter import DeadLetterHeaders
from schemas.events import Reason

NOW = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)


def letter(
    offset: int,
    reason: Reason | None = Reason.RETRIES_EXHAUSTED,
    *,
    minutes_ago: float = 0,
    store: str = "store-a",
    correlation: str = "corr",
    value: bytes | None = None,
    replays: int | None = None,
    original: tuple[tuple[str, bytes], ...] = (("traceparent", b"00-abc"),),
) -> DeadLetter:
    headers = list(original)
    if replays is not None:
        headers.append(("replay.count", str(replays).encode()))
    if reason is not None:
        headers += DeadLetterHeaders(
            reason=reason,
            error=f"{reason.value} error",
            source_topic="store.publish.requested",
            source_partition=0,
            source_offset=offset,
            attempts=3,
            failed_at=NOW - timedelta(minutes=minutes_ago),
            correlation_id=correlation,
        ).to_kafka()
    raw = RawRecord(
        topic="store.publish.dlq",
        partition=0,
        offset=offset,
        timestamp_ms=int(NOW.timestamp() * 1000),
        key=store.encode(),
        value=value if value is not None else f'{{"n": {offset}}}'.encode(),
        headers=tuple(headers),
    )
    return DeadLetter.from_raw(raw)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2h", NOW - timedelta(hours=2)),
        ("30m", NOW - timedelta(minutes=30)),
        ("45s", NOW - timedelta(seconds=45)),
        ("1d", NOW - timedelta(days=1)),
        ("1w", NOW - timedelta(weeks=1)),
        ("2026-01-31T10:00:00+01:00", datetime(2026, 1, 31, 9, 0, tzinfo=UTC)),
        ("2026-01-31T10:00:00Z", datetime(2026, 1, 31, 10, 0, tzinfo=UTC)),
        ("2026-01-31T10:00:00", datetime(2026, 1, 31, 10, 0, tzinfo=UTC)),
    ],
)
def test_since_and_until_take_durations_ago_or_iso_timestamps(
    text: str, expected: datetime
) -> None:
    assert parse_moment(text, NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "2 hours", "-1h", "", "2026-13-01"])
def test_a_moment_that_is_neither_a_duration_nor_a_timestamp_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="neither a duration"):
        parse_moment(text, NOW)


def test_every_given_filter_must_match() -> None:
    records = [
        letter(1, Reason.RETRIES_EXHAUSTED, minutes_ago=90, store="a", correlation="c1"),
        letter(2, Reason.GATING_UNAVAILABLE, minutes_ago=30, store="a", correlation="c2"),
        letter(3, Reason.RETRIES_EXHAUSTED, minutes_ago=10, store="b", correlation="c3"),
        letter(4, Reason.FORBIDDEN, minutes_ago=5, store="b", correlation="c4"),
    ]

    def offsets(filters: Filters) -> list[int]:
        return [record.offset for record in select(records, filters)]

    assert offsets(Filters()) == [1, 2, 3, 4]
    assert offsets(Filters(reasons=frozenset({Reason.RETRIES_EXHAUSTED}))) == [1, 3]
    assert offsets(Filters(since=NOW - timedelta(hours=1))) == [2, 3, 4]
    assert offsets(Filters(until=NOW - timedelta(minutes=20))) == [1, 2]
    assert offsets(Filters(store_id="b")) == [3, 4]
    assert offsets(Filters(correlation_id="c2")) == [2]
    assert offsets(Filters(store_id="b", reasons=frozenset({Reason.FORBIDDEN}))) == [4]
    assert offsets(Filters(limit=2)) == [1, 2]


def test_selection_is_oldest_failure_first_whatever_the_partition_order() -> None:
    records = [letter(1, minutes_ago=1), letter(2, minutes_ago=60), letter(3, minutes_ago=30)]
    assert [record.offset for record in select(records, Filters())] == [2, 3, 1]


def test_a_record_without_dlq_headers_is_shown_not_crashed_on() -> None:
    record = letter(7, None)
    assert record.reason is None
    assert record.error == "(no dlq.* headers)"
    assert not Filters(reasons=frozenset({Reason.FORBIDDEN})).matches(record)


def test_replay_restores_the_original_headers_and_raises_the_replay_count() -> None:
    first = letter(1, original=(("traceparent", b"t"), ("signature", b"sha256=ab")))
    again = letter(2, replays=2)
    assert replay_headers(first) == [
        ("traceparent", b"t"),
        ("signature", b"sha256=ab"),
        ("replay.count", b"1"),
    ]
    assert replay_headers(again) == [("traceparent", b"00-abc"), ("replay.count", b"3")]


@pytest.mark.parametrize(
    "reason", [Reason.BAD_SIGNATURE, Reason.INVALID_PAYLOAD, Reason.TOO_LARGE, None]
)
def test_reasons_that_cannot_succeed_on_replay_are_refused_unless_forced(
    reason: Reason | None,
) -> None:
    records = [letter(1, reason)]
    assert plan_replay(records, records, max_replays=3, force=False).selected[0][1] is (
        ReplayVerdict.REFUSED
    )
    assert (
        plan_replay(records, records, max_replays=3, force=True).selected[0][1]
        is ReplayVerdict.SEND
    )


def test_a_request_replayed_the_maximum_number_of_times_is_parked_unless_forced() -> None:
    records = [letter(1, replays=2, value=b"a"), letter(2, replays=3, value=b"b")]
    plan = plan_replay(records, records, max_replays=3, force=False)
    assert [found for _record, found in plan.selected] == [ReplayVerdict.SEND, ReplayVerdict.PARKED]
    forced = plan_replay(records, records, max_replays=3, force=True)
    assert [found for _record, found in forced.selected] == [ReplayVerdict.SEND, ReplayVerdict.SEND]


def test_only_the_latest_dead_letter_of_a_request_is_replayed_even_when_forced() -> None:
    older = letter(1, minutes_ago=20, value=b"same")
    newer = letter(2, minutes_ago=5, value=b"same", replays=1)
    other = letter(3, minutes_ago=1, value=b"other")
    everything = [older, newer, other]
    assert latest_by_request(everything)[older.request_identity] == newer
    # Selected alone (by a filter that misses the later copy), the older copy still yields.
    plan = plan_replay([older, other], everything, max_replays=3, force=True)
    assert [found for _record, found in plan.selected] == [
        ReplayVerdict.SUPERSEDED,
        ReplayVerdict.SEND,
    ]


def test_the_same_value_under_another_key_is_another_request() -> None:
    one, two = letter(1, value=b"v", store="a"), letter(2, value=b"v", store="b")
    assert one.request_identity != two.request_identity


def test_stats_count_by_reason_hour_store_and_error() -> None:
    records = [
        letter(1, Reason.RETRIES_EXHAUSTED, minutes_ago=0, store="a"),
        letter(2, Reason.RETRIES_EXHAUSTED, minutes_ago=70, store="a", replays=1),
        letter(3, Reason.FORBIDDEN, minutes_ago=5, store="b"),
    ]
    stats = dead_letter_stats(records)
    assert stats.total == 3
    assert stats.by_reason == [("retries_exhausted", 2), ("forbidden", 1)]
    assert stats.by_hour == [
        (datetime(2026, 1, 31, 10, 0, tzinfo=UTC), 1),
        (datetime(2026, 1, 31, 11, 0, tzinfo=UTC), 1),
        (datetime(2026, 1, 31, 12, 0, tzinfo=UTC), 1),
    ]
    assert stats.top_stores == [("a", 2), ("b", 1)]
    assert stats.top_errors[0] == ("retries_exhausted error", 2)
    assert stats.replayed == 1


def test_untrusted_text_is_shown_without_markup_or_terminal_escapes() -> None:
    shown = safe("[bold red]x[/] \x1b[2J\x07", 100)
    assert shown.plain == "[bold red]x[/] \\x1b[2J\\x07"
    assert not shown.spans


def test_a_value_is_pretty_json_when_it_parses_else_the_bytes_repr() -> None:
    assert decoded_value(b'{"a":1}') == ('{\n  "a": 1\n}', True)
    assert decoded_value(b"\xff\x00") == ("b'\\xff\\x00'", False)
    assert decoded_value(b"[" * 100_000) == (repr(b"[" * 100_000), False)


def test_lag_counts_from_the_commit_or_from_the_beginning_when_nothing_is_committed() -> None:
    lags = consumer_lag({0: (0, 10), 1: (5, 8), 2: (0, 0)}, {0: 7, 1: -1})
    assert [(lag.partition, lag.committed, lag.lag) for lag in lags] == [
        (0, 7, 3),
        (1, None, 3),
        (2, None, 0),
    ]


def test_the_operator_is_named_by_the_environment() -> None:
    assert operator_name({"STORE_PUBLISH_OPERATOR": "oncall-1", "USER": "root"}) == "oncall-1"
    assert operator_name({"USER": "bob"}) == "bob"
    assert operator_name({"LOGNAME": "carol", "USER": " "}) == "carol"
    assert operator_name({}) == "unknown"
