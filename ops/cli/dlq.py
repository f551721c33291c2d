"""`store-publish dlq list | show | stats | replay | history`: the dead-letter topic, on call.

Each command parses its flags, calls one function, prints: a table that fits the terminal
(`--wide` for whole ids and every column) or, with `--json`, JSON. Exit codes:
ops/errors.py.
"""

from __future__ import annotations

import asyncio
import os
from functools import partial
from typing import Annotated

import asyncpg
import typer
from rich.console import Console
from rich.text import Text

from ops.cli.edge import configured
from ops.cli.prompts import confirm_replay, replay_progress
from ops.cli.switch import operator_name
from ops.oncall.dead_letters import DeadLetter, Filters, select
from ops.oncall.fit import show as show_table
from ops.oncall.options import JsonOption, WideOption, filtered
from ops.oncall.render import (
    history_json,
    history_table,
    json_line,
    plan_summary,
    print_record,
    record_json,
    records_table,
    replay_json,
    stats_tables,
)
from ops.oncall.replay import (
    ReplayPlan,
    ReplayRecord,
    ReplayVerdict,
    plan_replay,
    record_replay,
    replay_history,
    send_replays,
)
from ops.oncall.stats import dead_letter_stats
from ops.oncall.topic_reader import read_at, read_snapshot, require_topic
from ops.probes import in_database
from ops.runtime.tracing import tracing
from schemas.settings import Settings

dlq_app = typer.Typer(
    help="Inspect and replay the dead-letter topic.", no_args_is_help=True, add_completion=False
)

# Before a real replay the selection is shown as a table up to this size (a dry run: always).
_TABLE_UP_TO = 50


async def _dead_letters(settings: Settings) -> list[DeadLetter]:
    raw = await read_snapshot(settings, settings.topic_dlq, "TOPIC_DLQ")
    return [DeadLetter.from_raw(record) for record in raw]


async def _plan(settings: Settings, filters: Filters, *, force: bool) -> ReplayPlan:
    everything = await _dead_letters(settings)
    return plan_replay(
        select(everything, filters),
        everything,
        max_replays=settings.dlq_max_replays,
        force=force,
    )


@dlq_app.command("list")
@filtered
def list_(
    filters: Filters,
    as_json: JsonOption = False,
    wide: WideOption = False,
) -> None:
    """The dead letters matching the filters, and what `replay` would do with each."""
    with configured() as settings:
        plan = asyncio.run(_plan(settings, filters, force=False))
    if as_json:
        for record, state in plan.selected:
            typer.echo(json_line(record_json(record, state)))
        return
    console = Console()
    title = f"{settings.topic_dlq}: {len(plan.selected)}"
    fitted = records_table(plan.selected, title, width=console.width, wide=wide)
    show_table(console, fitted, wide=wide)
    console.print(Text("replay would: ") + plan_summary(plan))


@dlq_app.command()
def show(
    position: Annotated[str, typer.Argument(metavar="PARTITION:OFFSET", help="e.g. 2:1017")],
    as_json: JsonOption = False,
    wide: WideOption = False,
) -> None:
    """One dead letter: its headers, its value decoded, and the error."""
    partition_text, colon, offset_text = position.partition(":")
    if not (colon and partition_text.isdigit() and offset_text.isdigit()):
        raise typer.BadParameter(
            f"{position!r} is not PARTITION:OFFSET (two numbers, e.g. 2:1017)",
            param_hint="PARTITION:OFFSET",
        )
    with configured() as settings:
        raw = asyncio.run(
            read_at(settings, settings.topic_dlq, int(partition_text), int(offset_text))
        )
    record = DeadLetter.from_raw(raw)
    if as_json:
        typer.echo(json_line(record_json(record)))
        return
    print_record(Console(), record, wide=wide)


@dlq_app.command()
@filtered
def stats(
    filters: Filters,
    top: Annotated[int, typer.Option(min=1, help="How many top stores and errors.")] = 10,
    as_json: JsonOption = False,
    wide: WideOption = False,
) -> None:
    """Counts by reason and by hour, top stores, top errors: the pattern behind a spike."""
    with configured() as settings:
        records = select(asyncio.run(_dead_letters(settings)), filters)
    found = dead_letter_stats(records, top=top)
    if as_json:
        typer.echo(json_line(found.to_json()))
        return
    console = Console()
    console.print(
        Text(
            f"{settings.topic_dlq}: {found.total} dead letters, {found.replayed} "
            "of them already replays"
        )
    )
    for table in stats_tables(found, width=console.width, wide=wide):
        show_table(console, table, wide=wide)


@dlq_app.command()
@filtered
def replay(
    filters: Filters,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show and record what would be sent; send nothing.")
    ] = False,
    rate: Annotated[
        float | None, typer.Option(min=0.001, help="At most this many records per second.")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    force: Annotated[
        bool,
        typer.Option(help="Also send refused reasons and parked records (replayed too often)."),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="The replay as one JSON object, no table.")
    ] = False,
    wide: WideOption = False,
) -> None:
    """Send the selected dead letters back to the requests topic, replay.count raised by one."""
    console = Console()
    operator = operator_name()
    with configured() as settings:
        plan = asyncio.run(_prepare(settings, filters, force=force))
        to_send = plan.having(ReplayVerdict.SEND)
        # The replay's row in dlq_replays, whatever became of it: a dry run, nothing, or what
        # was sent.
        record = partial(record_replay, operator=operator, filters=filters, plan=plan)
        if not as_json:
            if dry_run or len(plan.selected) <= _TABLE_UP_TO:
                title = f"{settings.topic_dlq}: selected"
                fitted = records_table(plan.selected, title, width=console.width, wide=wide)
                show_table(console, fitted, wide=wide)
            console.print(plan_summary(plan))
        if dry_run or not to_send:
            done = asyncio.run(
                in_database(settings.dsn(), partial(record, dry_run=dry_run, sent=0))
            )
            if as_json:
                typer.echo(json_line(replay_json(plan, dry_run=dry_run, sent=0, replay_id=done.id)))
                return
            what = "dry run: nothing sent" if dry_run else "nothing to replay"
            console.print(Text(f"{what} (recorded as replay #{done.id})"))
            return
        if not yes:
            confirm_replay(len(to_send), settings.topic_requests, on_stderr=as_json)
        with (
            tracing("store-publish-replay", os.environ) as tracer,
            replay_progress(Console(stderr=True), len(to_send)) as progress,
        ):
            task = progress.add_task("replaying", total=len(to_send))
            result = asyncio.run(
                send_replays(
                    settings,
                    to_send,
                    rate=rate,
                    on_sent=lambda count: progress.update(task, completed=count),
                    tracer=tracer,
                )
            )
        done = asyncio.run(
            in_database(settings.dsn(), partial(record, dry_run=False, sent=result.sent))
        )
        if as_json:
            typer.echo(
                json_line(replay_json(plan, dry_run=False, sent=result.sent, replay_id=done.id))
            )
        else:
            console.print(
                Text(
                    f"sent {result.sent} of {len(to_send)} to {settings.topic_requests} "
                    f"(recorded as replay #{done.id} by {operator})"
                )
            )
        if result.error is not None:
            raise result.error


async def _prepare(settings: Settings, filters: Filters, *, force: bool) -> ReplayPlan:
    # Both stores must answer before anything is decided: a replay is always recorded.
    await in_database(settings.dsn(), lambda conn: conn.execute("SELECT 1 FROM dlq_replays"))
    await require_topic(settings, settings.topic_requests, "TOPIC_REQUESTS")
    return await _plan(settings, filters, force=force)


@dlq_app.command()
def history(
    limit: Annotated[int, typer.Option(min=1, help="How many, most recent first.")] = 20,
    as_json: JsonOption = False,
    wide: WideOption = False,
) -> None:
    """The recorded replays and dry runs: when, by whom, which filters, how many records."""
    with configured() as settings:

        async def work(conn: asyncpg.Connection) -> list[ReplayRecord]:
            return await replay_history(conn, limit=limit)

        found = asyncio.run(in_database(settings.dsn(), work))
    if as_json:
        for record in found:
            typer.echo(json_line(history_json(record)))
        return
    console = Console()
    show_table(console, history_table(found, width=console.width, wide=wide), wide=wide)
