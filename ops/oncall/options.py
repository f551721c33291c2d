"""The dead-letter commands' shared options, and the filters they make."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
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


# The six filter options, in the order every filtering command shows them.
_FILTER_PARAMETERS = [
    inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=option)
    for name, option in (
        ("reason", ReasonOption),
        ("since", SinceOption),
        ("until", UntilOption),
        ("store_id", StoreOption),
        ("correlation_id", CorrelationOption),
        ("limit", LimitOption),
    )
]


def filtered(command: Callable[..., None]) -> Callable[..., None]:
    """`command(filters, ...)` as a typer command whose first options are the six filters,
    turned into its `filters` by `filters_of`: the filters declared here once, not in each
    command's signature."""
    own = [
        parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY)
        for parameter in list(inspect.signature(command, eval_str=True).parameters.values())[1:]
    ]

    @functools.wraps(command)
    def with_filters(
        *,
        reason: list[Reason] | None = None,
        since: str | None = None,
        until: str | None = None,
        store_id: str | None = None,
        correlation_id: str | None = None,
        limit: int | None = None,
        **kwargs: object,
    ) -> None:
        filters = filters_of(reason, since, until, store_id, correlation_id, limit)
        command(filters, **kwargs)

    with_filters.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [*_FILTER_PARAMETERS, *own], return_annotation=None
    )
    return with_filters
