"""What every `store-publish` command shows when it cannot do its job: one line on stderr and
one of the exit codes below, never a traceback. Scripts may rely on the codes; they are
documented in docs/runbook.md ("Exit codes").

Failures understood where they happen are raised as `OperatorError`. The rest is decided at
the CLI edge, in `operator_errors()`: invalid settings, a file that cannot be used, and a
service that does not answer (whether it answers is `ops.runtime.faults`' decision, the same
one the consumer's retries and pauses follow). Anything else is a bug: one line too, and with
`LOG_LEVEL=DEBUG` its traceback first.
"""

from __future__ import annotations

import asyncio
import logging
import os
import traceback
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from enum import IntEnum
from typing import TypeVar

import asyncpg
import typer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from ops.runtime.faults import describe, is_unreachable
from schemas.settings import Settings

T = TypeVar("T")

# Short, so that an unreachable service fails the command in seconds, not minutes.
KAFKA_TIMEOUT_MS = 5000
DATABASE_TIMEOUT_S = 5.0
# The whole conversation with a service (bootstrap, metadata, offsets) must fit in this.
SERVICE_DEADLINE_S = 15.0


class ExitCode(IntEnum):
    """Documented in docs/runbook.md ("Exit codes")."""

    OK = 0
    REFUSED = 1  # the operator declined, or no answer could be read from stdin
    BAD_ARGUMENTS = 2  # typer's own code for usage errors; also invalid configuration
    NOT_FOUND = 3  # no record at that PARTITION:OFFSET
    UNREACHABLE = 4  # Kafka or PostgreSQL did not answer in time, or refused the connection
    NOT_SET_UP = 5  # a topic or table is missing: run `store-publish migrate`
    BUG = 70  # an unforeseen error (sysexits' EX_SOFTWARE); LOG_LEVEL=DEBUG shows where


class OperatorError(Exception):
    """An expected failure: printed as one line, the command exits with `code`."""

    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def _detail(error: BaseException) -> str:
    return str(error) or type(error).__name__


def unreachable_kafka(servers: str, error: BaseException) -> OperatorError:
    return OperatorError(
        f"Kafka unreachable at {servers}: {_detail(error)} (check KAFKA_BOOTSTRAP_SERVERS)",
        ExitCode.UNREACHABLE,
    )


def unreachable_database(error: BaseException) -> OperatorError:
    # Never the URL itself: it may carry a password.
    return OperatorError(
        f"PostgreSQL unreachable: {_detail(error)} (check DATABASE_URL)", ExitCode.UNREACHABLE
    )


async def connect_database(dsn: str) -> asyncpg.Connection:
    """A connection, or an OperatorError saying why there is none (within seconds)."""
    try:
        return await asyncpg.connect(dsn, timeout=DATABASE_TIMEOUT_S)
    except Exception as error:
        if is_unreachable(error):
            raise unreachable_database(error) from error
        if isinstance(error, asyncpg.PostgresError):
            # The server answered and said no: a password, a user or a database name is wrong.
            raise OperatorError(
                f"PostgreSQL refused the connection: {_detail(error)} (check DATABASE_URL)",
                ExitCode.UNREACHABLE,
            ) from error
        raise


async def with_kafka_deadline(servers: str, work: Awaitable[T]) -> T:
    """`work`, or an OperatorError if Kafka fails or does not answer within the deadline."""
    try:
        return await asyncio.wait_for(work, timeout=SERVICE_DEADLINE_S)
    except TimeoutError as error:
        raise unreachable_kafka(servers, TimeoutError("no answer in time")) from error
    except KafkaError as error:
        if is_unreachable(error):
            raise unreachable_kafka(servers, error) from error
        raise OperatorError(
            f"Kafka at {servers} refused: {describe(error)} (check the KAFKA_* settings)",
            ExitCode.UNREACHABLE,
        ) from error


async def reach_database(settings: Settings) -> None:
    """PostgreSQL answers within seconds, or an OperatorError says why it does not."""
    conn = await connect_database(settings.dsn())
    await conn.close()


async def reach_kafka(settings: Settings) -> None:
    """Kafka answers within seconds, or an OperatorError says why it does not."""
    admin = AIOKafkaAdminClient(
        **settings.kafka_client_options(), request_timeout_ms=KAFKA_TIMEOUT_MS
    )

    async def bootstrap() -> None:
        try:
            await admin.start()
        finally:
            await admin.close()

    await with_kafka_deadline(settings.kafka_bootstrap_servers, bootstrap())


async def reach_services(settings: Settings) -> None:
    """Both services answer, the database first (the cheaper question)."""
    await reach_database(settings)
    await reach_kafka(settings)


def fail(message: str, code: ExitCode) -> typer.Exit:
    """Print `message` on stderr; the caller raises the returned Exit."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(int(code))


def _invalid_settings(error: ValidationError) -> str:
    problems = "; ".join(
        f"{'.'.join(str(part) for part in item['loc']).upper() or 'settings'}: {item['msg']}"
        for item in error.errors()
    )
    return f"invalid configuration: {problems}"


def explain(error: Exception) -> tuple[str, ExitCode]:
    """The one line and the exit code for an exception that reached the CLI edge."""
    if isinstance(error, OperatorError):
        return error.message, error.code
    if isinstance(error, ValidationError) and error.title == Settings.__name__:
        return _invalid_settings(error), ExitCode.BAD_ARGUMENTS
    if isinstance(error, OSError) and error.filename is not None:
        # A file named on the command line (or written by it) that cannot be used.
        return f"{error.strerror or _detail(error)}: {error.filename}", ExitCode.BAD_ARGUMENTS
    if is_unreachable(error):
        if isinstance(error, KafkaError):
            return (
                f"Kafka unreachable: {_detail(error)} (check KAFKA_BOOTSTRAP_SERVERS)",
                ExitCode.UNREACHABLE,
            )
        if isinstance(error, asyncpg.PostgresError | asyncpg.InterfaceError):
            return unreachable_database(error).message, ExitCode.UNREACHABLE
        return (
            f"a service stopped answering: {describe(error)} "
            "(check KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL)",
            ExitCode.UNREACHABLE,
        )
    return (
        f"unexpected {describe(error)} (a bug: LOG_LEVEL=DEBUG prints its traceback)",
        ExitCode.BUG,
    )


def _debugging() -> bool:
    # From the environment, not from Settings: the settings themselves may be what failed.
    return os.environ.get("LOG_LEVEL", "").strip().upper() == "DEBUG"


@contextmanager
def operator_errors(*, quiet_kafka: bool = True) -> Iterator[None]:
    """Turn every failure into one line on stderr and an exit code, at the CLI edge only.

    `quiet_kafka`: aiokafka logs every failed connection attempt, and a short command's
    operator gets one line from us instead; the long-running processes (consumer, stream,
    demo, bench) keep aiokafka's lines in their logs."""
    if quiet_kafka:
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        yield
    except (typer.Exit, typer.Abort, typer.exceptions.TyperException):
        raise  # typer's own exits and usage errors
    except Exception as error:
        if _debugging():
            traceback.print_exception(error)
        message, code = explain(error)
        raise fail(message, code) from None
    except KeyboardInterrupt:
        raise fail("interrupted", ExitCode.REFUSED) from None
