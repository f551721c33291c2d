"""What a replay asks of the operator and shows while it runs."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from ops.cli.edge import fail
from ops.errors import ExitCode

# A progress bar from this many records on, and only on a terminal.
_PROGRESS_FROM = 50


def confirm_replay(count: int, topic: str, *, on_stderr: bool) -> None:
    try:
        confirmed = typer.confirm(
            f"Replay {count} record(s) to {topic}?", default=False, err=on_stderr
        )
    except typer.Abort:
        typer.echo(err=on_stderr)  # end the prompt's line
        raise fail(
            "no answer on stdin to the confirmation: nothing sent (pass --yes to replay "
            "without asking)",
            ExitCode.REFUSED,
        ) from None
    if not confirmed:
        raise fail("not confirmed: nothing sent", ExitCode.REFUSED)


def replay_progress(console: Console, total: int) -> Progress:
    return Progress(
        *Progress.get_default_columns()[:1],
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=total < _PROGRESS_FROM or not console.is_terminal,
    )
