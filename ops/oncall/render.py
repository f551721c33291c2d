"""How dead letters look to a person (rich tables) and to a script (one JSON object a line).

Everything in a dead letter came from outside: it is shown escaped, never as rich markup
and never as raw terminal control sequences.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from datetime import datetime

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ops.oncall.dead_letters import DeadLetter
from ops.oncall.replay import ReplayPlan, ReplayRecord, ReplayVerdict
from ops.oncall.stats import DeadLetterStats

# A value longer than this is cut in `show`; `--json` gives it whole.
SHOW_VALUE_CHARS = 8000


def safe(text: str, limit: int | None = None) -> Text:
    """Untrusted text as plain rich Text: control characters escaped, no markup."""
    cleaned = "".join(
        char if char.isprintable() or char in "\n\t" else f"\\x{ord(char):02x}" for char in text
    )
    if limit is not None and len(cleaned) > limit:
        cleaned = cleaned[: limit - 1] + "…"
    return Text(cleaned)


def moment(value: datetime) -> str:
    return value.isoformat(timespec="seconds")


def decoded_value(value: bytes | None) -> tuple[str, bool]:
    """(text, is_json): pretty JSON when it parses, else the bytes' repr."""
    if value is None:
        return "(null)", False
    try:
        return json.dumps(json.loads(value), indent=2, ensure_ascii=False), True
    except (ValueError, RecursionError):
        return repr(value), False


def record_json(record: DeadLetter, state: ReplayVerdict | None = None) -> dict[str, object]:
    added = record.added
    body: dict[str, object] = {
        "partition": record.partition,
        "offset": record.offset,
        "failed_at": record.failed_at.isoformat(),
        "reason": record.reason.value if record.reason else None,
        "error": record.error,
        "store_id": record.store_id,
        "correlation_id": record.correlation_id,
        "replay_count": record.replay_count,
        "attempts": added.attempts if added else None,
        "source": (
            f"{added.source_topic}:{added.source_partition}:{added.source_offset}"
            if added
            else None
        ),
        "headers": {
            name: value.decode("utf-8", errors="backslashreplace") for name, value in record.headers
        },
    }
    if state is not None:
        body["state"] = state.value
    try:
        body["value"] = record.value.decode("utf-8") if record.value is not None else None
    except UnicodeDecodeError:
        body["value"] = None
        body["value_base64"] = base64.b64encode(record.value or b"").decode("ascii")
    return body


def json_line(body: object) -> str:
    return json.dumps(body, sort_keys=True, default=str)


def records_table(rows: Iterable[tuple[DeadLetter, ReplayVerdict]], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("at", "failed at (UTC)", "reason", "store_id", "correlation_id"):
        table.add_column(column, no_wrap=column != "correlation_id")
    table.add_column("replays", justify="right")
    table.add_column("replay")
    table.add_column("error", overflow="fold")
    for record, state in rows:
        table.add_row(
            record.position,
            record.failed_at.strftime("%Y-%m-%d %H:%M:%S"),
            record.reason.value if record.reason else "?",
            safe(record.store_id, 36),
            safe(record.correlation_id or "", 40),
            str(record.replay_count),
            state.value,
            safe(record.error, 120),
        )
    return table


def print_record(console: Console, record: DeadLetter) -> None:
    console.print(Text(f"dead letter {record.position}", style="bold"))
    console.print(Text(f"failed at: {moment(record.failed_at)}"))
    console.print(Text("reason:    ") + safe(record.reason.value if record.reason else "?"))
    console.print(Text("error:     ") + safe(record.error))
    console.print(Text("key:       ") + safe(repr(record.key)))
    headers = Table(title="headers", title_justify="left")
    headers.add_column("name")
    headers.add_column("value", overflow="fold")
    for name, value in record.headers:
        headers.add_row(safe(name), safe(value.decode("utf-8", errors="backslashreplace")))
    console.print(headers)
    text, is_json = decoded_value(record.value)
    size = len(record.value or b"")
    console.print(Text(f"value ({size} bytes, {'JSON' if is_json else 'not JSON'}):"))
    console.print(safe(text, SHOW_VALUE_CHARS))


def plan_summary(plan: ReplayPlan) -> Text:
    parts = [f"{len(plan.selected)} selected", f"{plan.count(ReplayVerdict.SEND)} to send"]
    refused = plan.having(ReplayVerdict.REFUSED)
    if refused:
        reasons = sorted({record.reason.value if record.reason else "?" for record in refused})
        parts.append(f"{len(refused)} refused ({', '.join(reasons)}: --force to send)")
    parked = plan.count(ReplayVerdict.PARKED)
    if parked:
        parts.append(f"{parked} parked (replayed too often: --force to send)")
    superseded = plan.count(ReplayVerdict.SUPERSEDED)
    if superseded:
        parts.append(f"{superseded} superseded by a later dead letter of the same request")
    return Text(", ".join(parts))


def stats_tables(stats: DeadLetterStats) -> list[Table]:
    def counts(title: str, first: str, rows: Iterable[tuple[str, int]]) -> Table:
        table = Table(title=title, title_justify="left")
        table.add_column(first, overflow="fold")
        table.add_column("count", justify="right")
        for name, count in rows:
            table.add_row(safe(name, 200), str(count))
        return table

    return [
        counts("by reason", "reason", stats.by_reason),
        counts(
            "by hour (UTC)",
            "hour",
            ((hour.strftime("%Y-%m-%d %H:00"), count) for hour, count in stats.by_hour),
        ),
        counts("top stores", "store_id", stats.top_stores),
        counts("top errors", "error", stats.top_errors),
    ]


def history_table(records: Iterable[ReplayRecord]) -> Table:
    table = Table(title="replays, most recent first", title_justify="left")
    for column in ("id", "at (UTC)", "operator", "dry run", "forced"):
        table.add_column(column, no_wrap=True)
    for column in ("selected", "sent", "refused", "parked"):
        table.add_column(column, justify="right")
    table.add_column("filters", overflow="fold")
    for record in records:
        table.add_row(
            str(record.id),
            record.replayed_at.strftime("%Y-%m-%d %H:%M:%S"),
            safe(record.operator, 40),
            "yes" if record.dry_run else "no",
            "yes" if record.forced else "no",
            str(record.selected),
            str(record.sent),
            str(record.refused),
            str(record.parked),
            safe(record.filters),
        )
    return table


def history_json(record: ReplayRecord) -> dict[str, object]:
    return {
        "id": record.id,
        "replayed_at": record.replayed_at.isoformat(),
        "operator": record.operator,
        "filters": json.loads(record.filters),
        "dry_run": record.dry_run,
        "forced": record.forced,
        "selected": record.selected,
        "sent": record.sent,
        "refused": record.refused,
        "parked": record.parked,
    }
