"""Whose fault a failure is, decided here once for every caller: the consumer's retries and
pauses, the rates stream's alert delivery, the on-call commands' exit codes.

- `TRANSIENT`: the same statement may succeed if simply tried again (a serialization
  failure, a deadlock, a lock or statement timeout): retry it within the request's budget.
- `UNREACHABLE`: the server cannot be reached or went away: nothing is the request's fault;
  wait until it answers again.
- `SYSTEMIC`: the database refuses every request alike (a read-only standby, a revoked
  privilege, a missing table, column or function, a full disk, too many connections, a
  changed password, a missing database) or our own code raised something unforeseen: pause
  and probe, never fail a request for it.
- `REQUEST`: tied to one request's data or rows (SQLSTATE classes 22, data exception, and 23,
  integrity violation): fail that request after its retries.
"""

from __future__ import annotations

from enum import StrEnum

import asyncpg
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError


class Fault(StrEnum):
    TRANSIENT = "transient"
    UNREACHABLE = "unreachable"
    SYSTEMIC = "systemic"
    REQUEST = "request"


# SQLSTATEs worth another try of the same statement.
_TRANSIENT_SQLSTATES = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "55P03",  # lock_not_available: lock_timeout
        "57014",  # query_canceled: statement_timeout
    }
)

# SQLSTATEs of a server that is going away or not taking connections (class 08 is added by
# its prefix): the server, not the statement, is the problem.
_UNREACHABLE_SQLSTATES = frozenset(
    {
        "57P01",  # admin_shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now
    }
)

_REQUEST_SQLSTATE_CLASSES = frozenset({"22", "23"})

# Raised by asyncpg itself, without a server answer: the connection is gone.
_UNREACHABLE_TYPES: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable; TimeoutError (a pool that cannot connect) too
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,  # the connection was closed under us
)


# Whatever a database call raises for the database's answer or its absence, rather than for a
# bug of ours: a caller that must answer rather than crash (the gateway's 503) catches these.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)


def sqlstate(error: BaseException) -> str | None:
    """The error's SQLSTATE when PostgreSQL gave one."""
    code = getattr(error, "sqlstate", None)
    return code if isinstance(code, str) else None


def classify(error: BaseException) -> Fault:
    """Whose fault `error` is. Anything not known to be transient, unreachable or the
    request's is systemic: a bug must pause the pipeline, not fill the dead-letter topic."""
    if isinstance(error, _UNREACHABLE_TYPES):
        return Fault.UNREACHABLE
    if isinstance(error, KafkaConnectionError | KafkaTimeoutError):
        return Fault.UNREACHABLE
    if isinstance(error, KafkaError):
        return Fault.TRANSIENT if getattr(error, "retriable", False) else Fault.SYSTEMIC
    code = sqlstate(error)
    if code is None:
        return Fault.SYSTEMIC
    if code in _TRANSIENT_SQLSTATES:
        return Fault.TRANSIENT
    if code in _UNREACHABLE_SQLSTATES or code.startswith("08"):
        return Fault.UNREACHABLE
    if code[:2] in _REQUEST_SQLSTATE_CLASSES:
        return Fault.REQUEST
    return Fault.SYSTEMIC


def is_unreachable(error: BaseException) -> bool:
    return classify(error) is Fault.UNREACHABLE


def is_worth_retrying(error: BaseException) -> bool:
    """A request's retry budget covers transient statements and a lost connection."""
    return classify(error) in (Fault.TRANSIENT, Fault.UNREACHABLE)


def describe(error: BaseException) -> str:
    """`Type: message`, with the SQLSTATE when there is one: how errors appear in logs,
    dead letters and health reports."""
    code = sqlstate(error)
    text = f"{type(error).__name__}: {error}"
    return f"{text} (SQLSTATE {code})" if code else text
