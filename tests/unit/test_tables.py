"""Every on-call table fits 80 and 120 columns: one line per row, whole headers, unique ids."""

from __future__ import annotations

import io
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from rich.console import Console

from ops.cli.switch import print_status
from ops.oncall.dead_letters import DeadLetter
from ops.oncall.fit import Column, Fitted, fit_table, show, unique_prefix_length
from ops.oncall.render import history_table, print_record, records_table, stats_tables
from ops.oncall.replay import ReplayRecord, ReplayVerdict
from ops.oncall.stats import dead_letter_stats
from ops.oncall.status import (
    ConsumerState,
    OutcomeCount,
    PartitionLag,
    PipelineStatus,
    RecentOutcomes,
)
from ops.oncall.topic_reader import RawRecord
from ops.runtime.pause_switch import ControlState
from schemas.dead_letter import DeadLetterHeaders
from schemas.events import Alert, AlertAction, AlertState, Reason

NOW = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
WIDTHS = (80, 120)
ERROR = "admin: Extra inputs are not permitted; confirm_publish: Input should be a valid boolean"
# Two store ids that share a long prefix, so the shortest unique prefix is longer than 8.
TWINS = ("5f0c4a7e-1a11-4bbb-8ccc-000000000001", "5f0c4a7e-1b11-4bbb-8ccc-000000000002")


def letters(count: int = 12) -> list[DeadLetter]:
    found = []
    for offset in range(count):
        store = TWINS[offset % 2] if offset < 4 else str(uuid.uuid4())
        headers = DeadLetterHeaders(
            reason=Reason.INVALID_PAYLOAD if offset % 3 else Reason.RETRIES_EXHAUSTED,
            error=ERROR + " \n and a second line" * (offset % 2),
            source_topic="store.publish.requested",
            source_partition=offset % 6,
            source_offset=1000 + offset,
            attempts=3,
            failed_at=NOW - timedelta(minutes=offset),
            correlation_id=f"upstream-checkout-{uuid.uuid4()}",
        ).to_kafka()
        raw = RawRecord(
            topic="store.publish.dlq",
            partition=offset % 6,
            offset=1000 + offset,
            timestamp_ms=int(NOW.timestamp() * 1000),
            key=store.encode(),
            value=b'{"event_id": "x", "admin": true}',
            headers=(("traceparent", b"00-" + b"a" * 120), *headers),
        )
        found.append(DeadLetter.from_raw(raw))
    return found


def rendered(draw: object, width: int) -> list[str]:
    out = io.StringIO()
    console = Console(file=out, width=width, color_system=None, legacy_windows=False)
    assert callable(draw)
    draw(console)
    return out.getvalue().splitlines()


def printer(fitted: Fitted, wide: bool = False) -> object:
    return lambda console: show(console, fitted, wide=wide)


def assert_fits(lines: list[str], width: int, headers: tuple[str, ...], rows: int) -> None:
    assert lines, "nothing printed"
    for line in lines:
        assert len(line) <= width, f"{len(line)} > {width}: {line!r}"
    header_lines = [line for line in lines if line.startswith("┃")]
    assert len(header_lines) == 1, "a header took more than one line"
    cells = [cell.strip() for cell in header_lines[0].strip("┃").split("┃")]
    assert cells == list(headers), "a header was cut"
    body = [line for line in lines if line.startswith("│")]
    assert len(body) == rows, "a row took more than one line"


@pytest.mark.parametrize("width", WIDTHS)
def test_dead_letter_list_fits_with_one_line_per_record_and_unique_store_prefixes(
    width: int,
) -> None:
    records = letters()
    rows = [(record, ReplayVerdict.REFUSED) for record in records]
    fitted = records_table(rows, "store.publish.dlq: 12", width=width)
    lines = rendered(printer(fitted), width)
    print("\n".join(lines))
    assert_fits(lines, width, fitted.headers, len(records))
    assert {"at", "reason", "error", "store_id"} <= set(fitted.headers)
    assert fitted.width <= width
    shown = [
        line.split("│")[fitted.headers.index("store_id") + 1].strip()
        for line in lines
        if line.startswith("│")
    ]
    for record, cell in zip(records, shown, strict=True):
        assert record.store_id.startswith(cell.rstrip("…"))
        assert len(cell) < len(record.store_id), "an id was not shortened"
    assert len({cell for cell in shown}) == len({record.store_id for record in records})
    errors = [
        line.split("│")[fitted.headers.index("error") + 1].strip()
        for line in lines
        if line.startswith("│")
    ]
    assert all(cell.startswith("admin: Extra") for cell in errors)
    assert any(cell.endswith("…") for cell in errors), "the long error was not cut"


@pytest.mark.parametrize("width", WIDTHS)
def test_a_narrow_terminal_drops_columns_by_priority_never_the_error(width: int) -> None:
    rows = [(record, ReplayVerdict.SEND) for record in letters()]
    narrow = records_table(rows, "t", width=width)
    wider = records_table(rows, "t", width=width + 60)
    assert set(narrow.headers) <= set(wider.headers)
    assert ("error" in narrow.headers and "correlation_id" not in narrow.headers) or width > 80


def test_wide_shows_every_column_and_whole_ids() -> None:
    records = letters()
    fitted = records_table([(r, ReplayVerdict.SEND) for r in records], "t", width=80, wide=True)
    lines = rendered(printer(fitted, wide=True), 80)
    text = "\n".join(lines)
    assert len(fitted.headers) == 8
    for record in records:
        assert record.store_id in text
        assert (record.correlation_id or "") in text
    assert all(len(line) <= fitted.width for line in lines)


@pytest.mark.parametrize("width", WIDTHS)
def test_show_stats_and_history_fit(width: int) -> None:
    records = letters()
    lines = rendered(lambda console: print_record(console, records[1]), width)
    assert all(len(line) <= width for line in lines)
    for fitted in stats_tables(dead_letter_stats(records, top=5), width=width):
        lines = rendered(printer(fitted), width)
        assert all(len(line) <= width for line in lines)
        assert len([line for line in lines if line.startswith("│")]) <= 12
    history = [
        ReplayRecord(
            n,
            NOW,
            f"cli:oncall-{n}",
            '{"reason": ["retries_exhausted"], "since": "' + NOW.isoformat() + '"}',
            n % 2 == 0,
            False,
            40,
            30,
            5,
            5,
        )
        for n in range(1, 6)
    ]
    fitted = history_table(history, width=width)
    lines = rendered(printer(fitted), width)
    print("\n".join(lines))
    assert_fits(lines, width, fitted.headers, len(history))
    assert {"id", "at (UTC)", "operator", "sent"} <= set(fitted.headers)


@pytest.mark.parametrize("width", WIDTHS)
def test_status_fits(width: int) -> None:
    alert = Alert(
        alert="store_publish_high_gating_block_rate",
        state=AlertState.FIRING,
        action=AlertAction.NOTIFY_TEAM,
        value=0.6123,
        threshold=0.5,
        for_seconds=600,
        window_start=NOW,
        window_end=NOW,
        evaluated_at=NOW,
    )
    found = PipelineStatus(
        control=ControlState(True, "error rate over 10 % " * 8, "stream:auto-rollback", NOW),
        consumer_group="store-publish",
        lag=[PartitionLag(p, 100 * p, 1000 * p, 900 * p) for p in range(6)],
        outcomes=RecentOutcomes(
            5.0,
            [
                OutcomeCount("rejected", "invalid_payload", 12, 0),
                OutcomeCount("published", None, 900, 4),
            ],
        ),
        alerts=[alert] * 3,
        firing=[alert.alert],
        consumers=[
            ConsumerState(
                "consumer-" + "x" * 40,
                "database_fault",
                "42501",
                "permission denied " * 10,
                NOW,
                3.0,
            )
        ],
    )
    lines = rendered(lambda console: print_status(console, found), width)
    print("\n".join(lines))
    assert all(len(line) <= width for line in lines)
    assert any("store_publish_high_gating_block_rate" in line for line in lines)
    assert len([line for line in lines if re.match(r"│\s+\d+ │", line)]) >= 6


def test_unique_prefix_is_the_shortest_that_tells_ids_apart() -> None:
    assert unique_prefix_length(list(TWINS)) == 11
    assert unique_prefix_length(["abcdefgh1", "abcdefgh2", "zzzzzzzzzzz"]) == 9
    assert unique_prefix_length(["same-value-here"] * 3) == 8
    fitted = fit_table([Column("a-long-header", kind="text", shortest=1)], [["x" * 300]], width=20)
    assert fitted.width <= 20
