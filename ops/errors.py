"""What every `store-publish` command says when it cannot do its job: one of the exit codes
below and one line, never a traceback. Scripts may rely on the codes; they are documented in
docs/runbook.md ("Exit codes").

This is the vocabulary only, with no command-line library in it: failures understood where
they happen are raised as `OperatorError`; `explain()` turns any other exception into a line
and a code (whether a service answers is `ops.runtime.faults`' decision, the same one the
consumer's retries and pauses follow). `ops.cli.edge` prints them.
"""

from __future__ import annotations

from enum import IntEnum

import asyncpg
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from ops.runtime.errors import NotAuthorized, PartitionCountMismatch, UnknownExporter
from ops.runtime.faults import describe, is_unreachable
from schemas.settings import Settings


class ExitCode(IntEnum):
    """Documented in docs/runbook.md ("Exit codes")."""

    OK = 0
    REFUSED = 1  # the operator declined, or no answer could be read from stdin
    BAD_ARGUMENTS = 2  # typer's own code for usage errors; also invalid configuration
    NOT_FOUND = 3  # no record at that PARTITION:OFFSET
    UNREACHABLE = 4  # Kafka or PostgreSQL did not answer in time, or refused the connection
    NOT_SET_UP = 5  # a topic or table is missing: run `store-publish migrate`
    FORBIDDEN = 6  # the principal lacks an ACL or a grant its role needs (docs/security.md)
    BUG = 70  # an unforeseen error (sysexits' EX_SOFTWARE); LOG_LEVEL=DEBUG shows where


class OperatorError(Exception):
    """An expected failure: printed as one line, the command exits with `code`."""

    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def detail(error: BaseException) -> str:
    return str(error) or type(error).__name__


def unreachable_kafka(servers: str, error: BaseException) -> OperatorError:
    return OperatorError(
        f"Kafka unreachable at {servers}: {detail(error)} (check KAFKA_BOOTSTRAP_SERVERS)",
        ExitCode.UNREACHABLE,
    )


def unreachable_database(error: BaseException) -> OperatorError:
    # Never the URL itself: it may carry a password.
    return OperatorError(
        f"PostgreSQL unreachable: {detail(error)} (check DATABASE_URL)", ExitCode.UNREACHABLE
    )


def missing_topic(topic: str, variable: str) -> OperatorError:
    return OperatorError(
        f"topic {topic!r} does not exist (run `store-publish migrate`, or check {variable})",
        ExitCode.NOT_SET_UP,
    )


def _invalid_settings(error: ValidationError) -> str:
    problems = "; ".join(
        f"{'.'.join(str(part) for part in item['loc']).upper() or 'settings'}: {item['msg']}"
        for item in error.errors()
    )
    return f"invalid configuration: {problems}"


def explain(error: Exception) -> tuple[str, ExitCode]:
    """The one line and the exit code for an exception that reached a command's edge."""
    if isinstance(error, OperatorError):
        return error.message, error.code
    if isinstance(error, PartitionCountMismatch | UnknownExporter):
        return str(error), ExitCode.BAD_ARGUMENTS
    if isinstance(error, NotAuthorized):
        return str(error), ExitCode.FORBIDDEN
    if isinstance(error, ValidationError) and error.title == Settings.__name__:
        return _invalid_settings(error), ExitCode.BAD_ARGUMENTS
    if isinstance(error, OSError) and error.filename is not None:
        # A file named on the command line (or written by it) that cannot be used.
        return f"{error.strerror or detail(error)}: {error.filename}", ExitCode.BAD_ARGUMENTS
    if is_unreachable(error):
        if isinstance(error, KafkaError):
            return (
                f"Kafka unreachable: {detail(error)} (check KAFKA_BOOTSTRAP_SERVERS)",
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
