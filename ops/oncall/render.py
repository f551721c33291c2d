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
from rich.text import Text

from ops.oncall.dead_letters import DeadLetter
from ops.oncall.fit import Column, Fitted, fit_table, show
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


RECORD_COLUMNS = (
    Column("at", keep=0),
    Column("reason", keep=0),
    Column("error", keep=0, kind="text", shortest=30, longest=200),
    Column("store_id", keep=1, kind="id"),
    Column("failed at (UTC)", keep=4),
    Column("replay", keep=3),
    Column("correlation_id", keep=5, kind="id"),
    Column("replays", keep=6, right=True),
)


def records_table(
    rows: Iterable[tuple[DeadLetter, ReplayVerdict]], title: str, *, width: int, wide: bool = False
) -> Fitted:
    """One line per dead letter; the error keeps the room the ids and times leave."""
    cells = [
        [
            record.position,
            record.reason.value if record.reason else "?",
            record.error,
            record.store_id,
            record.failed_at.strftime("%Y-%m-%d %H:%M:%S"),
            state.value,
            record.correlation_id or "",
            str(record.replay_count),
        ]
        for record, state in rows
    ]
    return fit_table(RECORD_COLUMNS, cells, width=width, wide=wide, title=title)


def print_record(console: Console, record: DeadLetter, *, wide: bool = False) -> None:
    console.print(Text(f"dead letter {record.position}", style="bold"))
    console.print(Text(f"failed at: {moment(record.failed_at)}"))
    console.print(Text("reason:    ") + safe(record.reason.value if record.reason else "?"))
    console.print(Text("error:     ") + safe(record.error))
    console.print(Text("key:       ") + safe(repr(record.key)))
    headers = fit_table(
        (Column("header", kind="text", shortest=12, longest=40), Column("value", kind="text")),
        [
            [name, value.decode("utf-8", errors="backslashreplace")]
            for name, value in record.headers
        ],
        width=console.width,
        wide=wide,
        title="headers",
    )
    show(console, headers, wide=wide)
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


def stats_tables(stats: DeadLetterStats, *, width: int, wide: bool = False) -> list[Fitted]:
    def counts(title: str, first: Column, rows: Iterable[tuple[str, int]]) -> Fitted:
        cells = [[name, str(count)] for name, count in rows]
        return fit_table(
            (first, Column("count", right=True)), cells, width=width, wide=wide, title=title
        )

    return [
        counts("by reason", Column("reason"), stats.by_reason),
        counts(
            "by hour (UTC)",
            Column("hour"),
            ((hour.strftime("%Y-%m-%d %H:00"), count) for hour, count in stats.by_hour),
        ),
        counts("top stores", Column("store_id", kind="id"), stats.top_stores),
        counts("top errors", Column("error", kind="text", longest=200), stats.top_errors),
    ]


HISTORY_COLUMNS = (
    Column("id", right=True),
    Column("at (UTC)"),
    Column("operator", kind="text", shortest=16, longest=40),
    Column("sent", right=True),
    Column("selected", keep=1, right=True),
    Column("dry run", keep=2),
    Column("refused", keep=4, right=True),
    Column("parked", keep=5, right=True),
    Column("forced", keep=6),
    Column("filters", keep=3, kind="text", shortest=10, longest=200),
)


def history_table(records: Iterable[ReplayRecord], *, width: int, wide: bool = False) -> Fitted:
    cells = [
        [
            str(record.id),
            record.replayed_at.strftime("%Y-%m-%d %H:%M:%S"),
            record.operator,
            str(record.sent),
            str(record.selected),
            "yes" if record.dry_run else "no",
            str(record.refused),
            str(record.parked),
            "yes" if record.forced else "no",
            record.filters,
        ]
        for record in records
    ]
    return fit_table(
        HISTORY_COLUMNS, cells, width=width, wide=wide, title="replays, most recent first"
    )


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


def replay_json(plan: ReplayPlan, *, dry_run: bool, sent: int, replay_id: int) -> dict[str, object]:
    """A replay as one object: what was selected, each record's verdict, what was sent."""
    return {
        "replay_id": replay_id,
        "dry_run": dry_run,
        "selected": len(plan.selected),
        "sent": sent,
        **{verdict.value: plan.count(verdict) for verdict in ReplayVerdict},
        "records": [record_json(record, state) for record, state in plan.selected],
    }
