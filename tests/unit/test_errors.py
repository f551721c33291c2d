"""Error classification, decided once: transient, database unavailable, or permanent."""

from __future__ import annotations

import asyncpg
import pytest
from aiokafka import errors as kafka_errors

from consumers.errors import (
    DatabaseUnavailable,
    is_database_unavailable,
    is_kafka_retriable,
    is_transient,
)

pg = asyncpg.exceptions


def named(error: BaseException) -> str:
    return type(error).__name__


TRANSIENT_STATEMENT = [
    pg.SerializationError("40001"),
    pg.DeadlockDetectedError("40P01"),
    pg.LockNotAvailableError("55P03"),
    pg.QueryCanceledError("57014"),
]
UNAVAILABLE = [
    ConnectionRefusedError(111, "refused"),
    ConnectionResetError(104, "reset"),
    OSError(113, "no route to host"),
    pg.ConnectionDoesNotExistError("gone"),
    pg.PostgresConnectionError("08006"),
    pg.InterfaceError("connection is closed"),
    pg.AdminShutdownError("57P01"),
    pg.CannotConnectNowError("57P03"),
    pg.TooManyConnectionsError("53300"),
    DatabaseUnavailable("probe failed"),
]
PERMANENT = [
    pg.UniqueViolationError("23505"),
    pg.ForeignKeyViolationError("23503"),
    pg.CheckViolationError("23514"),
    pg.UndefinedTableError("42P01"),
    pg.DataError("22000"),
    ValueError("bad"),
    KeyError("k"),
    RuntimeError("published 0 of 1 stores"),
]


@pytest.mark.parametrize("error", [*TRANSIENT_STATEMENT, *UNAVAILABLE, TimeoutError()], ids=named)
def test_transient_and_connection_errors_are_retried(error: BaseException) -> None:
    assert is_transient(error)


@pytest.mark.parametrize("error", PERMANENT, ids=named)
def test_permanent_errors_are_not_retried(error: BaseException) -> None:
    assert not is_transient(error)
    assert not is_database_unavailable(error)


@pytest.mark.parametrize("error", UNAVAILABLE, ids=named)
def test_lost_or_refused_connections_mean_the_database_is_unavailable(
    error: BaseException,
) -> None:
    assert is_database_unavailable(error)


@pytest.mark.parametrize("error", TRANSIENT_STATEMENT, ids=named)
def test_statement_conflicts_are_transient_but_not_an_outage(error: BaseException) -> None:
    # A deadlock or a lock timeout is the request's retry, not a reason to stop consuming.
    assert not is_database_unavailable(error)


def test_client_side_timeout_counts_as_the_database_being_unavailable() -> None:
    # TimeoutError is an OSError since Python 3.11: asyncpg's connect and pool timeouts send
    # the consumer to wait for the database rather than fail the request.
    assert is_database_unavailable(TimeoutError())


@pytest.mark.parametrize(
    ("error", "retriable"),
    [
        (kafka_errors.RequestTimedOutError(), True),
        (kafka_errors.NotLeaderForPartitionError(), True),
        (kafka_errors.KafkaConnectionError(), True),
        (kafka_errors.ProducerFenced(), False),
        (kafka_errors.TopicAuthorizationFailedError(), False),
        (kafka_errors.MessageSizeTooLargeError(), False),
        (OSError("not a kafka error"), False),
    ],
    ids=lambda v: named(v) if isinstance(v, BaseException) else str(v),
)
def test_kafka_errors_are_retried_only_when_aiokafka_marks_them_retriable(
    error: BaseException, retriable: bool
) -> None:
    assert is_kafka_retriable(error) is retriable
