"""`store-publish`: the one command. Each subcommand parses its arguments and calls one function.

Every subcommand runs inside `operator_errors()` (ops/cli/edge.py): a bad setting, a
service that does not answer or a file that cannot be read is one line on stderr and a stable
exit code, never a traceback.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Annotated, Protocol, TextIO

import typer

from ops.cli.acl import acl_app
from ops.cli.bench import bench
from ops.cli.dlq import dlq_app
from ops.cli.edge import configured, operator_errors
from ops.cli.switch import pause, resume, status
from ops.errors import ExitCode, OperatorError
from ops.probes import reach_kafka, reach_services, with_kafka_deadline
from schemas.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

app = typer.Typer(
    name="store-publish",
    help="Store publish pipeline: consumer, rates stream and on-call tools.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Store publish pipeline: consumer, rates stream and on-call tools."""


@app.command()
def migrate() -> None:
    """Bring the database schema and the topics up to date (idempotent)."""
    from consumers.ledger import maintain_ledger_once
    from ops.db.migrate import MigrationDrift, migrate_database
    from ops.runtime.topics import reconcile_topics

    async def run(settings: Settings) -> None:
        await reach_services(settings)  # both, before either is changed
        try:
            applied = await migrate_database(settings.dsn())
        except MigrationDrift as error:
            raise OperatorError(
                f"{error}: restore the file; an applied migration is never edited",
                ExitCode.NOT_SET_UP,
            ) from error
        typer.echo(f"database: {len(applied)} migration(s) applied {applied}")
        made, dropped = await maintain_ledger_once(settings)
        typer.echo(f"ledger: {len(made)} partition(s) created, {len(dropped)} dropped")
        servers = settings.kafka_bootstrap_servers
        report = await with_kafka_deadline(servers, reconcile_topics(settings))
        for line in report.lines():
            typer.echo(line)

    with configured() as settings:
        asyncio.run(run(settings))


def traced(service: str) -> AbstractContextManager[Tracer | None]:
    """The command's tracer when the OTEL_* environment turns tracing on, else None."""
    from ops.runtime.tracing import tracing

    return tracing(service, os.environ)


class _Service(Protocol):
    """What `_serve` runs: the consumer's, the stream's and the gateway's `run_*` alike."""

    def __call__(
        self, settings: Settings, /, *, stop: asyncio.Event | None, tracer: Tracer | None
    ) -> Awaitable[None]: ...


def _serve(
    service: str,
    run: _Service,
    *,
    check: Callable[[Settings], None] | None = None,
    prepare: Callable[[], None] | None = None,
) -> None:
    """A long-running process: settings checked here, then `run` until SIGTERM or SIGINT.
    Services that do not answer yet are waited for by design, not refused. Traced as
    `service` when the OTEL_* environment turns tracing on (docs/tracing.md)."""
    from ops.runtime.logs import configure_logging
    from ops.runtime.signals import stop_on_signals

    with configured(quiet_kafka=False) as settings, traced(service) as tracer:
        if check is not None:
            check(settings)
        configure_logging(settings.log_level)
        if prepare is not None:
            prepare()

        async def main() -> None:
            await run(settings, stop=stop_on_signals(), tracer=tracer)

        asyncio.run(main())


@app.command()
def consume() -> None:
    """Run the publish consumer until SIGTERM or SIGINT; then drain, commit and exit 0."""
    from consumers.app import run_consumer
    from ops.runtime.collector import tune_for_batches

    _serve("store-publish-consumer", run_consumer, prepare=tune_for_batches)


@app.command()
def stream() -> None:
    """Run the rates stream: window rates, p95 latency, alerts and the automatic pause."""
    from streams.app import run_stream

    _serve("store-publish-stream", run_stream)


def _gateway_secret(settings: Settings) -> None:
    if settings.jwt_secret is None:
        raise OperatorError(
            "JWT_SECRET is not set: the gateway verifies bearer tokens with it",
            ExitCode.BAD_ARGUMENTS,
        )


@app.command()
def gateway() -> None:
    """Serve the original `POST /api/store/publish` through the pipeline, until SIGTERM."""
    from ops.gateway.app import run_gateway

    _serve("store-publish-gateway", run_gateway, check=_gateway_secret)


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

    with operator_errors():
        # The arguments before the settings: a wrong call is told so whatever the environment.
        if (source is None) == (synthetic == 0):
            raise OperatorError(
                "give either a SOURCE file (or -) or --synthetic N", ExitCode.BAD_ARGUMENTS
            )
        settings = Settings()

        async def send_synthetic(tracer: Tracer | None) -> int:
            await reach_services(settings)  # the stores are picked from the database
            return await emit_synthetic(settings, synthetic, rate=rate, tracer=tracer)

        async def send_lines(lines: TextIO, tracer: Tracer | None) -> int:
            await reach_kafka(settings)
            return await emit_lines(settings, lines, rate=rate, tracer=tracer)

        with traced("store-publish-emit") as tracer:
            if source is None:
                sent = asyncio.run(send_synthetic(tracer))
            else:
                # Opened before any service is asked: a missing file is one line of its own.
                lines = sys.stdin if source == "-" else open(source, encoding="utf-8")  # noqa: SIM115
                with lines:
                    sent = asyncio.run(send_lines(lines, tracer))
        typer.echo(f"sent {sent} request(s) to {settings.topic_requests}")


app.add_typer(dlq_app, name="dlq")
app.add_typer(acl_app, name="acl")
app.command()(pause)
app.command()(resume)
app.command()(status)


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

    with configured(quiet_kafka=False) as settings:
        configure_logging("ERROR")

        async def run() -> bool:
            await reach_services(settings)
            return await run_demo(
                settings, creators=creators, requests=requests, rate=rate, console=Console()
            )

        balanced = asyncio.run(run())
    raise typer.Exit(0 if balanced else 1)


app.command()(bench)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
