"""The dead-letter commands' shared options, and the filters they make."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from ops.oncall.dead_letters import Filters, parse_moment
from schemas.events import Reason

ReasonOption = Annotated[
    list[Reason] | None,
    typer.Option("--reason", help="Only this dead-letter reason; repeat for several."),
]
SinceOption = Annotated[
    str | None,
    typer.Option(help="Failed at or after: a duration ago (2h, 30m, 1d) or an ISO timestamp."),
]
UntilOption = Annotated[
    str | None,
    typer.Option(help="Failed at or before: a duration ago (2h, 30m, 1d) or an ISO timestamp."),
]
StoreOption = Annotated[str | None, typer.Option("--store-id", help="Only this store (the key).")]
CorrelationOption = Annotated[
    str | None, typer.Option("--correlation-id", help="Only this correlation id.")
]
LimitOption = Annotated[
    int | None, typer.Option(min=1, help="At most this many, oldest failure first.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="One JSON object per line.")]
WideOption = Annotated[
    bool, typer.Option("--wide", help="Whole ids and every column, however wide.")
]


def filters_of(
    reason: list[Reason] | None,
    since: str | None,
    until: str | None,
    store_id: str | None,
    correlation_id: str | None,
    limit: int | None,
) -> Filters:
    now = datetime.now(UTC)
    moments: dict[str, datetime | None] = {}
    for flag, text in (("--since", since), ("--until", until)):
        try:
            moments[flag] = parse_moment(text, now) if text is not None else None
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint=flag) from None
    start, end = moments["--since"], moments["--until"]
    if start is not None and end is not None and start > end:
        raise typer.BadParameter("--since is after --until", param_hint="--since")
    return Filters(
        reasons=frozenset(reason or ()),
        since=start,
        until=end,
        store_id=store_id,
        correlation_id=correlation_id,
        limit=limit,
    )
