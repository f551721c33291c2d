"""`store-publish`: the one command. Each subcommand parses its arguments and calls one function."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import typer

from ops.oncall.dlq_commands import dlq_app
from ops.oncall.switch_commands import pause, resume, status
from schemas.settings import Settings

app = typer.Typer(
    name="store-publish",
    help="Store publish pipeline: consumer, rates stream and on-call tools.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Store publish pipeline: consumer, rates stream and on-call tools."""


def load_settings() -> Settings:
    return Settings()


@app.command()
def migrate() -> None:
    """Bring the database schema and the topics up to date (idempotent)."""
    from ops.db.migrate import migrate_database
    from ops.runtime.topics import ensure_topics

    settings = load_settings()

    async def run() -> None:
        applied = await migrate_database(settings.dsn())
        created = await ensure_topics(settings)
        typer.echo(f"database: {len(applied)} migration(s) applied {applied}")
        typer.echo(f"topics: {len(created)} created {created}")

    asyncio.run(run())


@app.command()
def consume() -> None:
    """Run the publish consumer until SIGTERM or SIGINT; then drain, commit and exit 0."""
    from consumers.app import run_consumer
    from ops.runtime.logs import configure_logging
    from ops.runtime.signals import stop_on_signals

    settings = load_settings()
    configure_logging(settings.log_level)

    async def run() -> None:
        await run_consumer(settings, stop=stop_on_signals())

    asyncio.run(run())


@app.command()
def stream() -> None:
    """Run the rates stream: window rates, p95 latency, alerts and the automatic pause."""
    from ops.runtime.logs import configure_logging
    from ops.runtime.signals import stop_on_signals
    from streams.app import run_stream

    settings = load_settings()
    configure_logging(settings.log_level)

    async def run() -> None:
        await run_stream(settings, stop=stop_on_signals())

    asyncio.run(run())


@app.command()
def emit(
    source: Annotated[
        str | None,
        typer.Argument(help="A JSON-lines file of requests, or - for stdin."),
    ] = None,
    synthetic: Annotated[
        int, typer.Option(help="Generate this many requests for stores in the database.")
    ] = 0,
    rate: Annotated[
        float, typer.Option(help="Requests per second; 0 sends as fast as possible.")
    ] = 0.0,
) -> None:
    """Send publish requests to the requests topic (signed when EVENT_SIGNING_SECRET is set)."""
    from ops.dev.emit import emit_lines, emit_synthetic

    settings = load_settings()
    if (source is None) == (synthetic == 0):
        raise typer.BadParameter("give either a SOURCE file (or -) or --synthetic N")
    if source is not None:
        stream = sys.stdin if source == "-" else open(source, encoding="utf-8")  # noqa: SIM115
        with stream:
            sent = asyncio.run(emit_lines(settings, stream, rate=rate))
    else:
        sent = asyncio.run(emit_synthetic(settings, synthetic, rate=rate))
    typer.echo(f"sent {sent} request(s) to {settings.topic_requests}")


app.add_typer(dlq_app, name="dlq")
app.command()(pause)
app.command()(resume)
app.command()(status)


def _local_services_when_unconfigured() -> None:
    """Start `ops/dev/services` and use it when no broker or database is configured."""
    import os
    import subprocess
    from pathlib import Path

    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") and os.environ.get("DATABASE_URL"):
        return
    script = Path(__file__).resolve().parent / "services"
    subprocess.run([str(script), "up"], check=True)
    printed = subprocess.run([str(script), "env"], check=True, capture_output=True, text=True)
    for line in printed.stdout.splitlines():
        name, _, value = line.partition("=")
        os.environ.setdefault(name, value)


@app.command()
def demo(
    creators: Annotated[int, typer.Option(help="Creators to seed.")] = 2000,
    requests: Annotated[int, typer.Option(help="Requests to send.")] = 3000,
    rate: Annotated[float, typer.Option(help="Requests per second; 0 for no limit.")] = 0.0,
) -> None:
    """Seed creators, run the consumer and the rates stream, send requests, print the account."""
    from rich.console import Console

    from ops.demo.story import run_demo
    from ops.runtime.logs import configure_logging

    _local_services_when_unconfigured()
    settings = load_settings()
    configure_logging("ERROR")
    balanced = asyncio.run(
        run_demo(settings, creators=creators, requests=requests, rate=rate, console=Console())
    )
    raise typer.Exit(0 if balanced else 1)


@app.command()
def bench(
    requests: Annotated[int, typer.Option(help="Requests pre-loaded for throughput.")] = 200_000,
    creators: Annotated[int, typer.Option(help="Creators to seed.")] = 50_000,
    baseline: Annotated[
        bool, typer.Option("--baseline", help="Also run the per-request baseline.")
    ] = False,
    rate: Annotated[float, typer.Option(help="Offered requests/s for latency.")] = 1000.0,
    latency_seconds: Annotated[float, typer.Option(help="Seconds of latency load.")] = 60.0,
    workers: Annotated[
        int, typer.Option(help="With more than 1, also run that many consumers in one group.")
    ] = 1,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the figures as JSON here.")
    ] = None,
    chart: Annotated[Path | None, typer.Option(help="PNG chart; default next to the JSON.")] = None,
    keep: Annotated[bool, typer.Option(help="Keep the run's topics and databases.")] = False,
    profile: Annotated[
        Path | None, typer.Option(help="Record py-spy profiles of the consumer and stream here.")
    ] = None,
) -> None:
    """Throughput (passthrough, pipeline, baseline), latency at a fixed rate, CPU and lag."""
    from ops.bench.options import BenchOptions
    from ops.bench.report import write_chart
    from ops.bench.run import run_bench
    from ops.runtime.logs import configure_logging

    _local_services_when_unconfigured()
    settings = load_settings()
    configure_logging("ERROR")
    options = BenchOptions(
        requests=requests,
        creators=creators,
        baseline=baseline,
        rate=rate,
        latency_seconds=latency_seconds,
        workers=workers,
        keep=keep,
        profile_dir=profile,
    )
    report = asyncio.run(run_bench(settings, options, say=typer.echo))
    for line in report.summary():
        typer.echo(line)
    if json_path is not None:
        report.write_json(json_path)
        typer.echo(f"figures: {json_path}")
    chart_path = chart or (json_path.with_suffix(".png") if json_path else None)
    if chart_path is not None:
        write_chart(report, chart_path)
        typer.echo(f"chart: {chart_path}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
