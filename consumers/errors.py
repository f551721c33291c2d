"""Which failures are worth another try, and which mean the database is gone: decided here once."""

from __future__ import annotations

import asyncpg
from aiokafka.errors import KafkaError

# A statement that may succeed if simply tried again (the issue lists them by SQLSTATE).
_TRANSIENT_STATEMENT_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.SerializationError,  # 40001
    asyncpg.exceptions.DeadlockDetectedError,  # 40P01
    asyncpg.exceptions.LockNotAvailableError,  # 55P03: lock_timeout
    asyncpg.exceptions.QueryCanceledError,  # 57014: statement_timeout
)

# The server cannot be reached or has gone away: not the request's fault, so the consumer
# waits for the database instead of failing requests.
_UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable; TimeoutError (a pool that cannot connect) too
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.PostgresConnectionError,  # SQLSTATE class 08
    asyncpg.exceptions.InterfaceError,  # the connection was closed under us
    asyncpg.exceptions.AdminShutdownError,  # 57P01
    asyncpg.exceptions.CrashShutdownError,  # 57P02
    asyncpg.exceptions.CannotConnectNowError,  # 57P03
    asyncpg.exceptions.TooManyConnectionsError,  # 53300
)


class DatabaseUnavailable(Exception):
    """PostgreSQL did not answer: the batch is handed back and the consumer waits."""


class BatchHandedBack(Exception):
    """The batch's Kafka transaction failed; it was aborted and the batch goes back to Kafka."""


class PartitionLost(Exception):
    """Another consumer claimed the partition: this one must not write for it any more."""


class PublishingPaused(Exception):
    """The pause switch is on: the batch is handed back untouched."""


def is_database_unavailable(error: BaseException) -> bool:
    return isinstance(error, (*_UNAVAILABLE_ERRORS, DatabaseUnavailable))


def is_transient(error: BaseException) -> bool:
    """Worth retrying for the same request: a transient statement error or a lost connection."""
    return isinstance(error, _TRANSIENT_STATEMENT_ERRORS) or is_database_unavailable(error)


def is_kafka_retriable(error: BaseException) -> bool:
    return isinstance(error, KafkaError) and bool(getattr(error, "retriable", False))
