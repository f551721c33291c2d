"""`dlq list | show | stats | replay | history` against the real broker and database."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import asyncpg

from schemas.events import Reason
from schemas.settings import Settings
from tests.helpers.dlq import Letter, cli, json_lines, produce_dead_letters
from tests.helpers.support import read_topic


async def listed(settings: Settings, *flags: str) -> list[str]:
    ran = await cli(settings, "dlq", "list", "--json", *flags)
    assert ran.code == 0, ran.err
    return [str(row["correlation_id"]) for row in json_lines(ran.out)]


async def test_filters_select_exactly_the_matching_dead_letters(settings: Settings) -> None:
    s1, s2, s3 = "store-1", "store-2", "store-3"
    letters = [
        Letter(Reason.RETRIES_EXHAUSTED, s1, "a", minutes_ago=90),
        Letter(Reason.GATING_UNAVAILABLE, s1, "b", minutes_ago=30),
        Letter(Reason.RETRIES_EXHAUSTED, s2, "c", minutes_ago=10),
        Letter(Reason.FORBIDDEN, s2, "d", minutes_ago=5),
        Letter(Reason.BAD_SIGNATURE, s3, "e", minutes_ago=2),
        Letter(Reason.RETRIES_EXHAUSTED, s3, "f", minutes_ago=200),
    ]
    await produce_dead_letters(settings, letters)
    forty_five_ago = (datetime.now(UTC) - timedelta(minutes=45)).isoformat()

    assert await listed(settings) == ["f", "a", "b", "c", "d", "e"]
    assert await listed(settings, "--reason", "retries_exhausted") == ["f", "a", "c"]
    assert await listed(settings, "--reason", "retries_exhausted", "--reason", "forbidden") == [
        "f",
        "a",
        "c",
        "d",
    ]
    assert await listed(settings, "--since", "1h") == ["b", "c", "d", "e"]
    assert await listed(settings, "--since", forty_five_ago) == ["b", "c", "d", "e"]
    assert await listed(settings, "--since", "2h", "--until", "20m") == ["a", "b"]
    assert await listed(settings, "--store-id", s2) == ["c", "d"]
    assert await listed(settings, "--correlation-id", "b") == ["b"]
    assert await listed(settings, "--store-id", s1, "--reason", "gating_unavailable") == ["b"]
    assert await listed(settings, "--limit", "2") == ["f", "a"]
    assert await listed(settings, "--store-id", "nobody") == []


async def test_show_gives_headers_value_and_error_and_stats_find_the_pattern(
    settings: Settings,
) -> None:
    letters = [
        Letter(Reason.RETRIES_EXHAUSTED, "s1", "a", error="lock timeout"),
        Letter(Reason.RETRIES_EXHAUSTED, "s1", "b", error="lock timeout"),
        Letter(Reason.INVALID_PAYLOAD, "s2", "c", value=b"\xff\x1b[2Jnot json", error="bad"),
    ]
    positions = await produce_dead_letters(settings, letters)

    shown = await cli(settings, "dlq", "show", positions[0], "--json")
    assert shown.code == 0, shown.err
    record = json.loads(shown.out)
    assert record["error"] == "lock timeout"
    assert record["headers"]["traceparent"] == "00-trace-01"
    assert record["headers"]["dlq.reason"] == "retries_exhausted"
    assert json.loads(str(record["value"]))["correlation_id"] == "a"

    human = await cli(settings, "dlq", "show", positions[2])
    assert human.code == 0, human.err
    assert "not JSON" in human.out
    assert "\x1b" not in human.out  # the value's escape sequence is shown, not obeyed
    assert "\\x1b[2J" in human.out

    stats = await cli(settings, "dlq", "stats", "--json")
    assert stats.code == 0, stats.err
    found = json.loads(stats.out)
    assert found["total"] == 3
    assert found["by_reason"] == {"retries_exhausted": 2, "invalid_payload": 1}
    assert found["top_stores"] == {"s1": 2, "s2": 1}
    assert found["top_errors"]["lock timeout"] == 2
    assert sum(found["by_hour"].values()) == 3


async def replays(settings: Settings) -> list[dict[str, object]]:
    ran = await cli(settings, "dlq", "history", "--json")
    assert ran.code == 0, ran.err
    return json_lines(ran.out)


async def test_a_dry_run_sends_nothing_and_is_recorded(settings: Settings) -> None:
    await produce_dead_letters(
        settings,
        [
            Letter(Reason.RETRIES_EXHAUSTED),
            Letter(Reason.RETRIES_EXHAUSTED),
            Letter(Reason.FORBIDDEN),
        ],
    )
    ran = await cli(settings, "dlq", "replay", "--dry-run", "--reason", "retries_exhausted")
    assert ran.code == 0, ran.err
    assert "dry run: nothing sent" in ran.out
    assert await read_topic(settings, settings.topic_requests, expect=0, wait_s=1) == []
    (recorded,) = await replays(settings)
    assert recorded["dry_run"] is True
    assert recorded["operator"] == "oncall-1"
    assert recorded["filters"] == {"reason": ["retries_exhausted"]}
    assert (recorded["selected"], recorded["sent"], recorded["refused"]) == (2, 0, 0)


async def test_replay_sends_exactly_the_selected_with_original_headers_and_count_raised(
    settings: Settings,
) -> None:
    chosen = [
        Letter(Reason.RETRIES_EXHAUSTED, "s1", "a", original=(("signature", b"sha256=00ff"),)),
        Letter(Reason.RETRIES_EXHAUSTED, "s2", "b", replay_count=1, original=()),
    ]
    others = [Letter(Reason.GATING_UNAVAILABLE, "s3", "c"), Letter(Reason.FORBIDDEN, "s1", "d")]
    await produce_dead_letters(settings, [chosen[0], *others, chosen[1]])

    ran = await cli(settings, "dlq", "replay", "--reason", "retries_exhausted", "--yes")
    assert ran.code == 0, ran.err
    assert "sent 2 of 2" in ran.out

    sent = await read_topic(settings, settings.topic_requests, expect=2, wait_s=10)
    by_key = {record.key.decode(): record for record in sent}
    assert sorted(by_key) == ["s1", "s2"]
    assert (
        by_key["s1"].value == chosen[0].body()
        or json.loads(by_key["s1"].value)["correlation_id"] == "a"
    )
    assert list(by_key["s1"].headers) == [("signature", b"sha256=00ff"), ("replay.count", b"1")]
    assert list(by_key["s2"].headers) == [("replay.count", b"2")]
    (recorded,) = await replays(settings)
    assert (recorded["dry_run"], recorded["selected"], recorded["sent"]) == (False, 2, 2)


async def test_replay_resends_the_value_bytes_unchanged(settings: Settings) -> None:
    raw = b'{"weird":   "spacing", "kept": true}'
    await produce_dead_letters(settings, [Letter(Reason.USER_NOT_FOUND, "s9", value=raw)])
    ran = await cli(settings, "dlq", "replay", "--yes")
    assert ran.code == 0, ran.err
    (sent,) = await read_topic(settings, settings.topic_requests, expect=1, wait_s=10)
    assert (sent.key, sent.value) == (b"s9", raw)


async def test_reasons_that_cannot_succeed_are_refused_unless_forced(settings: Settings) -> None:
    await produce_dead_letters(
        settings,
        [
            Letter(Reason.BAD_SIGNATURE, "s1"),
            Letter(Reason.INVALID_PAYLOAD, "s2"),
            Letter(Reason.TOO_LARGE, "s3"),
            Letter(Reason.STORE_NOT_FOUND, "s4"),
        ],
    )
    ran = await cli(settings, "dlq", "replay", "--yes")
    assert ran.code == 0, ran.err
    assert "3 refused" in ran.out
    sent = await read_topic(settings, settings.topic_requests, expect=1, wait_s=10)
    assert [record.key for record in sent] == [b"s4"]

    forced = await cli(settings, "dlq", "replay", "--reason", "bad_signature", "--force", "--yes")
    assert forced.code == 0, forced.err
    sent = await read_topic(settings, settings.topic_requests, expect=2, wait_s=10)
    assert sorted(record.key for record in sent) == [b"s1", b"s4"]

    latest, first = await replays(settings)
    assert (first["selected"], first["sent"], first["refused"], first["forced"]) == (4, 1, 3, False)
    assert (latest["sent"], latest["forced"]) == (1, True)


async def test_a_request_replayed_the_maximum_times_is_parked_unless_forced(
    settings: Settings,
) -> None:
    assert settings.dlq_max_replays == 3
    await produce_dead_letters(
        settings,
        [
            Letter(Reason.RETRIES_EXHAUSTED, "tired", replay_count=3),
            Letter(Reason.RETRIES_EXHAUSTED, "fresh", replay_count=2),
        ],
    )
    listed_rows = json_lines((await cli(settings, "dlq", "list", "--json")).out)
    assert {row["store_id"]: row["state"] for row in listed_rows} == {
        "tired": "parked",
        "fresh": "send",
    }
    ran = await cli(settings, "dlq", "replay", "--yes")
    assert ran.code == 0, ran.err
    assert "1 parked" in ran.out
    (sent,) = await read_topic(settings, settings.topic_requests, expect=1, wait_s=10)
    assert (sent.key, dict(sent.headers)["replay.count"]) == (b"fresh", b"3")
    (recorded,) = await replays(settings)
    assert (recorded["sent"], recorded["parked"]) == (1, 1)

    forced = await cli(settings, "dlq", "replay", "--store-id", "tired", "--force", "--yes")
    assert forced.code == 0, forced.err
    sent_all = await read_topic(settings, settings.topic_requests, expect=2, wait_s=10)
    assert [dict(r.headers)["replay.count"] for r in sent_all if r.key == b"tired"] == [b"4"]


async def test_only_the_latest_dead_letter_of_a_request_goes_back(settings: Settings) -> None:
    """Kafka keeps every copy: replaying an older one would reuse a spent replay.count."""
    same = b'{"the": "same request"}'
    await produce_dead_letters(
        settings,
        [
            Letter(Reason.RETRIES_EXHAUSTED, "s1", "first", value=same, minutes_ago=20),
            Letter(
                Reason.RETRIES_EXHAUSTED, "s1", "again", value=same, minutes_ago=5, replay_count=1
            ),
        ],
    )
    ran = await cli(settings, "dlq", "replay", "--yes")
    assert ran.code == 0, ran.err
    assert "1 superseded" in ran.out
    (sent,) = await read_topic(settings, settings.topic_requests, expect=1, wait_s=10)
    assert dict(sent.headers)["replay.count"] == b"2"


async def test_a_replay_is_paced_by_rate(settings: Settings) -> None:
    await produce_dead_letters(settings, [Letter(Reason.RETRIES_EXHAUSTED) for _ in range(6)])
    ran = await cli(settings, "dlq", "replay", "--yes", "--rate", "4")
    assert ran.code == 0, ran.err
    assert "sent 6 of 6" in ran.out
    sent = await read_topic(settings, settings.topic_requests, expect=6, wait_s=10)
    stamps = sorted(record.timestamp_ms for record in sent)
    assert stamps[-1] - stamps[0] >= 1000  # six records at 4/s span at least 1.25 s


async def test_history_lists_every_replay_most_recent_first(
    settings: Settings, database_url: str
) -> None:
    await produce_dead_letters(settings, [Letter(Reason.RETRIES_EXHAUSTED, "s1")])
    assert (await cli(settings, "dlq", "replay", "--dry-run")).code == 0
    assert (await cli(settings, "dlq", "replay", "--yes", "--store-id", "s1")).code == 0
    assert (await cli(settings, "dlq", "replay", "--yes", "--store-id", "none")).code == 0
    rows = await replays(settings)
    assert [(row["dry_run"], row["selected"], row["sent"]) for row in rows] == [
        (False, 0, 0),
        (False, 1, 1),
        (True, 1, 0),
    ]
    assert rows[1]["filters"] == {"store_id": "s1"}
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM dlq_replays") == 3
    finally:
        await conn.close()
    table = await cli(settings, "dlq", "history")
    assert table.code == 0, table.err
    assert "oncall-1" in table.out
