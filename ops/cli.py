"""`store-publish`: the one command. Each subcommand parses its arguments and calls one function."""

from __future__ import annotations

import asyncio

import typer

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
    from ops.migrate import migrate_database, migrate_topics

    settings = load_settings()

    async def run() -> None:
        applied = await migrate_database(settings.dsn())
        created = await migrate_topics(settings)
        typer.echo(f"database: {len(applied)} migration(s) applied {applied}")
        typer.echo(f"topics: {len(created)} created {created}")

    asyncio.run(run())


def main() -> None:
    app()


if __name__ == "__main__":
    main()
