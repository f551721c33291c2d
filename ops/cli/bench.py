"""`store-publish bench`: its options are `BenchOptions`' fields, each shown with its help here
and defaulting to the field's default, so a default is written once (ops/bench/options.py)."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, get_type_hints

import typer

from ops.bench.options import BenchOptions
from ops.cli.edge import configured
from ops.errors import ExitCode, OperatorError
from ops.probes import reach_services

if TYPE_CHECKING:
    from ops.bench.report import Report

_FIELD_TYPES = get_type_hints(BenchOptions)
_DEFAULTS = BenchOptions()

# The command's options in the order --help shows them: a BenchOptions field by its name,
# typed and defaulted by the field, or one of the command's own, in `_OWN`.
_OPTIONS: dict[str, Any] = {
    "requests": typer.Option(help="Requests pre-loaded for throughput."),
    "creators": typer.Option(help="Creators to seed."),
    "baseline": typer.Option("--baseline", help="Also run the per-request baseline."),
    "rate": typer.Option(help="Offered requests/s for latency."),
    "latency_seconds": typer.Option(help="Seconds of latency load."),
    "low_rate": typer.Option(help="Offered requests/s of the low-rate phase."),
    "low_rate_seconds": typer.Option(help="Seconds of the low-rate phase; 0 skips it."),
    "workers": typer.Option(help="With more than 1, also run that many consumers in one group."),
    "stream_workers": typer.Option(
        help="Stream workers in one group beside the scale-out consumers."
    ),
    "gateway_clients": typer.Option(
        help="Concurrent HTTP clients of the gateway phase; 0 skips it."
    ),
    "json_path": typer.Option("--json", help="Write the figures as JSON here."),
    "chart": typer.Option(help="PNG chart; default next to the JSON."),
    "keep": typer.Option(help="Keep the run's topics and databases."),
    "profile_dir": typer.Option(
        "--profile", help="Record py-spy profiles of the consumer and stream here."
    ),
    "tracing": typer.Option(
        "--tracing",
        help="Also run the latency phase with the consumer and stream tracing (OTLP to a "
        "loopback sink that drops): CPU per request, tracing off and on.",
    ),
}
# Where the figures are written: the command's, not the run's; their types and defaults.
_OWN: dict[str, tuple[Any, object]] = {
    "json_path": (Path | None, None),
    "chart": (Path | None, None),
}


def _parameter(name: str, option: Any) -> inspect.Parameter:
    kind, default = _OWN.get(name) or (_FIELD_TYPES[name], getattr(_DEFAULTS, name))
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[kind, option]
    )


def bench(*, json_path: Path | None, chart: Path | None, **fields: Any) -> None:
    """Throughput (passthrough, pipeline, baseline), latency at a fixed rate, CPU and lag."""
    from ops.bench.chart import write_chart
    from ops.bench.run import run_bench
    from ops.runtime.logs import configure_logging

    with configured(quiet_kafka=False) as settings:
        configure_logging("ERROR")
        options = BenchOptions(**fields)
        refusal = options.refusal()
        if refusal is not None:
            raise OperatorError(refusal, ExitCode.BAD_ARGUMENTS)

        async def run() -> Report:
            await reach_services(settings)
            return await run_bench(settings, options, say=typer.echo)

        report = asyncio.run(run())
        for line in report.summary():
            typer.echo(line)
        if json_path is not None:
            report.write_json(json_path)
            typer.echo(f"figures: {json_path}")
        chart_path = chart or (json_path.with_suffix(".png") if json_path else None)
        if chart_path is not None:
            write_chart(report, chart_path)
            typer.echo(f"chart: {chart_path}")


bench.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [_parameter(name, option) for name, option in _OPTIONS.items()], return_annotation=None
)
