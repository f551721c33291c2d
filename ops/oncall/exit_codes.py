"""The on-call commands' database work and missing topics, as operator errors.

The exit codes, `OperatorError` and `operator_errors()` are every command's, in
`ops/command_errors.py`; this module adds what only the on-call commands need: a database
conversation whose missing table means "not migrated", and a missing topic.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from ops.command_errors import ExitCode, OperatorError, connect_database
from ops.runtime.faults import is_unreachable

T = TypeVar("T")


def missing_topic(topic: str, variable: str) -> OperatorError:
    return OperatorError(
        f"topic {topic!r} does not exist (run `store-publish migrate`, or check {variable})",
        ExitCode.NOT_SET_UP,
    )


async def in_database(dsn: str, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Run `work` on a fresh connection; a missing table means the schema is not migrated."""
    conn = await connect_database(dsn)
    try:
        return await work(conn)
    except asyncpg.UndefinedTableError as error:
        raise OperatorError(
            f"database not migrated ({error}): run `store-publish migrate`", ExitCode.NOT_SET_UP
        ) from error
    except Exception as error:
        if is_unreachable(error):
            raise OperatorError(
                f"PostgreSQL connection lost: {error}", ExitCode.UNREACHABLE
            ) from error
        raise
    finally:
        await conn.close()
