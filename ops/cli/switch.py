"""`store-publish pause | resume | status`: the partial rollback switch and the pipeline's state.

Pausing flips the one row of `publish_control` (ops/runtime/pause_switch.py) that the consumer
obeys: requests wait in Kafka, nothing is published or lost, and `resume` processes all of them.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated

import asyncpg
import typer
from rich.console import Console
from rich.text import Text

from ops.cli.edge import configured
from ops.oncall.fit import Column, cut, fit_table, one_line, show
from ops.oncall.render import json_line, moment, safe
from ops.oncall.status import PipelineStatus, pipeline_status
from ops.probes import in_database
from ops.runtime.pause_switch import ControlState, read_control, set_paused
from schemas.events import Status
from schemas.settings import Settings


def operator_name(environ: Mapping[str, str] = os.environ) -> str:
    """Who is at the keyboard: STORE_PUBLISH_OPERATOR, else the login name."""
    for variable in ("STORE_PUBLISH_OPERATOR", "USER", "LOGNAME"):
        if environ.get(variable, "").strip():
            return environ[variable].strip()
    return "unknown"


def _ago(when: datetime) -> str:
    seconds = max(int((datetime.now(UTC) - when).total_seconds()), 0)
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min ago"


def _describe(state: ControlState) -> Text:
    if not state.paused:
        head = Text("publishing: running", style="bold green")
    else:
        head = Text("publishing: PAUSED", style="bold red")
        head.append("  reason: ").append_text(safe(state.reason or "(none given)"))
    head.append(f"  since {moment(state.changed_at)} ({_ago(state.changed_at)})  by ")
    return head.append_text(safe(state.changed_by))


async def _switch(settings: Settings, *, paused: bool, reason: str | None, by: str) -> bool:
    """Set the switch unless it is already so; True when it changed."""

    async def work(conn: asyncpg.Connection) -> bool:
        if (await read_control(conn)).paused == paused:
            return False
        await set_paused(conn, paused=paused, reason=reason, changed_by=by)
        return True

    return await in_database(settings.dsn(), work)


async def _control(settings: Settings) -> ControlState:
    return await in_database(settings.dsn(), read_control)


def pause(
    reason: Annotated[
        str, typer.Option("--reason", help="Why publishing stops; shown by `status`.")
    ],
) -> None:
    """Stop publishing (partial rollback): requests wait in Kafka until `resume`."""
    if not reason.strip():
        raise typer.BadParameter("give the reason in words", param_hint="--reason")
    console = Console()
    with configured() as settings:
        by = f"cli:{operator_name()}"
        changed = asyncio.run(_switch(settings, paused=True, reason=reason.strip(), by=by))
        state = asyncio.run(_control(settings))
    if not changed:
        console.print(Text("already paused; nothing changed.", style="yellow"))
    console.print(_describe(state))


def resume() -> None:
    """Publish again: the requests held in Kafka while paused are processed, oldest first."""
    console = Console()
    with configured() as settings:
        by = f"cli:{operator_name()}"
        changed = asyncio.run(_switch(settings, paused=False, reason=None, by=by))
        state = asyncio.run(_control(settings))
    if not changed:
        console.print(Text("already running; nothing changed.", style="yellow"))
    console.print(_describe(state))


def status(
    minutes: Annotated[
        float, typer.Option(min=0.1, help="Outcomes over this many past minutes.")
    ] = 5.0,
    alerts: Annotated[int, typer.Option(min=0, help="How many recent alerts to show.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object, for scripts.")] = False,
    wide: Annotated[
        bool, typer.Option("--wide", help="Every column, however wide the terminal.")
    ] = False,
) -> None:
    """Paused or not (why, since when, by whom), consumer lag, recent outcomes and alerts."""
    with configured() as settings:
        found = asyncio.run(pipeline_status(settings, minutes=minutes, alerts=alerts))
    if as_json:
        typer.echo(json_line(found.to_json()))
        return
    print_status(Console(), found, wide=wide)


LAG_COLUMNS = (
    Column("partition", right=True),
    Column("lag", right=True),
    Column("committed", keep=1, right=True),
    Column("end", keep=2, right=True),
)
OUTCOME_COLUMNS = (
    Column("status"),
    Column("reason"),
    Column("count", right=True),
    Column("retried", keep=1, right=True),
)
ALERT_COLUMNS = (
    Column("evaluated at (UTC)"),
    Column("alert"),
    Column("state"),
    Column("value", keep=1, right=True),
    Column("threshold", keep=2, right=True),
    Column("action", keep=3),
)


def print_status(console: Console, found: PipelineStatus, *, wide: bool = False) -> None:
    """The switch, the lag per partition, the recent outcomes and alerts, fitted to `console`."""
    width = console.width
    console.print(_describe(found.control))
    # Wrapped, never cut: the advice at its end is the point of the line.
    for warning in found.retention:
        console.print(Text(warning.describe(), style="bold red"))
    for durability in found.durability:
        console.print(Text(durability.describe(), style="bold red"))
    for missing in found.privileges:
        console.print(Text(missing.describe(), style="bold red"))
    for consumer in found.consumers:
        line = Text(cut(one_line(consumer.describe()), width) if not wide else consumer.describe())
        console.print(line, style="bold red" if consumer.held_back else "")
    lag_rows = [
        [
            str(item.partition),
            str(item.lag),
            "-" if item.committed is None else str(item.committed),
            str(item.end),
        ]
        for item in found.lag
    ]
    title = f"consumer group {found.consumer_group}: lag {found.total_lag}"
    show(console, fit_table(LAG_COLUMNS, lag_rows, width=width, wide=wide, title=title), wide=wide)

    recent = found.outcomes
    console.print(
        Text(
            f"last {recent.minutes:g} min: {recent.total} outcomes ({recent.per_minute:.1f}/min), "
            f"failed {recent.share(Status.FAILED):.1%}, gated {recent.share(Status.GATED):.1%}, "
            f"retried {recent.retry_share:.1%}"
        )
    )
    if recent.counts:
        rows = [
            [count.status, count.reason or "", str(count.count), str(count.retried)]
            for count in recent.counts
        ]
        show(console, fit_table(OUTCOME_COLUMNS, rows, width=width, wide=wide), wide=wide)

    firing = ", ".join(found.firing) if found.firing else "none"
    console.print(Text(f"alerts firing: {firing}", style="bold red" if found.firing else ""))
    if found.alerts:
        rows = [
            [
                alert.evaluated_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
                alert.alert,
                alert.state.value,
                f"{alert.value:.4g}",
                f"{alert.threshold:.4g}",
                alert.action.value,
            ]
            for alert in found.alerts
        ]
        fitted = fit_table(ALERT_COLUMNS, rows, width=width, wide=wide, title="last alerts")
        show(console, fitted, wide=wide)
