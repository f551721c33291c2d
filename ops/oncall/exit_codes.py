"""Exit codes and operator errors of the on-call commands (`dlq`, `pause`, `resume`, `status`).

One place decides what an operator sees when something is wrong: a one-line message on
stderr and one of these codes, never a traceback. Scripts may rely on the codes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from enum import IntEnum
from typing import TypeVar

import asyncpg
import typer
from aiokafka.errors import KafkaError
from pydantic import ValidationError

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
    UNREACHABLE = 4  # Kafka or PostgreSQL did not answer in time
    NOT_SET_UP = 5  # a topic or table is missing: run `store-publish migrate`


class OperatorError(Exception):
    """An expected failure: printed as one line, the command exits with `code`."""

    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def unreachable_kafka(servers: str, error: BaseException) -> OperatorError:
    detail = str(error) or type(error).__name__
    return OperatorError(
        f"Kafka unreachable at {servers}: {detail} (check KAFKA_BOOTSTRAP_SERVERS)",
        ExitCode.UNREACHABLE,
    )


def missing_topic(topic: str, variable: str) -> OperatorError:
    return OperatorError(
        f"topic {topic!r} does not exist (run `store-publish migrate`, or check {variable})",
        ExitCode.NOT_SET_UP,
    )


async def connect_database(dsn: str) -> asyncpg.Connection:
    """A connection, or an OperatorError saying why there is none (within seconds)."""
    try:
        return await asyncpg.connect(dsn, timeout=DATABASE_TIMEOUT_S)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        detail = str(error) or type(error).__name__
        raise OperatorError(
            f"PostgreSQL unreachable: {detail} (check DATABASE_URL)", ExitCode.UNREACHABLE
        ) from error


async def in_database(dsn: str, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Run `work` on a fresh connection; a missing table means the schema is not migrated."""
    conn = await connect_database(dsn)
    try:
        return await work(conn)
    except asyncpg.UndefinedTableError as error:
        raise OperatorError(
            f"database not migrated ({error}): run `store-publish migrate`", ExitCode.NOT_SET_UP
        ) from error
    except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as error:
        raise OperatorError(f"PostgreSQL connection lost: {error}", ExitCode.UNREACHABLE) from error
    finally:
        await conn.close()


async def with_kafka_deadline(servers: str, work: Awaitable[T]) -> T:
    """`work`, or an OperatorError if Kafka fails or does not answer within the deadline."""
    try:
        return await asyncio.wait_for(work, timeout=SERVICE_DEADLINE_S)
    except TimeoutError as error:
        raise unreachable_kafka(servers, TimeoutError("no answer in time")) from error
    except KafkaError as error:
        raise unreachable_kafka(servers, error) from error


def fail(message: str, code: ExitCode) -> typer.Exit:
    """Print `message` on stderr; the caller raises the returned Exit."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(int(code))


@contextmanager
def operator_errors() -> Iterator[None]:
    """Turn expected failures into a message and an exit code, at the CLI edge only."""
    # aiokafka logs every failed connection attempt; the operator gets one line from us.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        yield
    except OperatorError as error:
        raise fail(error.message, error.code) from None
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']).upper() or 'settings'}: {item['msg']}"
            for item in error.errors()
        )
        raise fail(f"invalid configuration: {problems}", ExitCode.BAD_ARGUMENTS) from None
    except KeyboardInterrupt:
        raise fail("interrupted", ExitCode.REFUSED) from None
