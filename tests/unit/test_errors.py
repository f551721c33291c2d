"""Error classification as the consumer uses it: what is retried, what means the database is
gone, what is the request's own fault. The one module that decides is `ops.runtime.faults`."""

from __future__ import annotations

import asyncpg
import pytest

from consumers.errors import DatabaseFault
from ops.runtime.faults import Fault, classify, is_unreachable, is_worth_retrying

pg = asyncpg.exceptions


def named(error: BaseException) -> str:
    return type(error).__name__


def server_errors(*sqlstates: str) -> list[BaseException]:
    """What asyncpg raises when the server answers with each SQLSTATE (its class by code)."""
    return [pg.PostgresError.new({"C": code, "M": f"server said {code}"}) for code in sqlstates]


TRANSIENT_STATEMENT = server_errors("40001", "40P01", "55P03", "57014")
UNAVAILABLE = [
    ConnectionRefusedError(111, "refused"),
    ConnectionResetError(104, "reset"),
    OSError(113, "no route to host"),
    pg.ConnectionDoesNotExistError("gone"),
    pg.PostgresConnectionError("08006"),
    pg.InterfaceError("connection is closed"),
    *server_errors("57P01", "57P03"),
]
REQUESTS_OWN = server_errors("23505", "23503", "23514", "22000")
SYSTEMIC = [
    *server_errors("42P01", "53300"),
    ValueError("bad"),
    KeyError("k"),
    RuntimeError("published 0 of 1 stores"),
]


@pytest.mark.parametrize("error", [*TRANSIENT_STATEMENT, *UNAVAILABLE, TimeoutError()], ids=named)
def test_transient_and_connection_errors_are_retried(error: BaseException) -> None:
    assert is_worth_retrying(error)


@pytest.mark.parametrize("error", [*REQUESTS_OWN, *SYSTEMIC], ids=named)
def test_permanent_errors_are_not_retried(error: BaseException) -> None:
    assert not is_worth_retrying(error)
    assert not is_unreachable(error)


@pytest.mark.parametrize("error", REQUESTS_OWN, ids=named)
def test_data_and_integrity_errors_are_the_requests_own(error: BaseException) -> None:
    assert classify(error) is Fault.REQUEST


@pytest.mark.parametrize("error", SYSTEMIC, ids=named)
def test_schema_capacity_and_our_own_bugs_are_systemic(error: BaseException) -> None:
    assert classify(error) is Fault.SYSTEMIC


@pytest.mark.parametrize("error", UNAVAILABLE, ids=named)
def test_lost_or_refused_connections_mean_the_database_is_unavailable(
    error: BaseException,
) -> None:
    assert is_unreachable(error)


@pytest.mark.parametrize("error", TRANSIENT_STATEMENT, ids=named)
def test_statement_conflicts_are_transient_but_not_an_outage(error: BaseException) -> None:
    # A deadlock or a lock timeout is the request's retry, not a reason to stop consuming.
    assert not is_unreachable(error)


def test_client_side_timeout_counts_as_the_database_being_unavailable() -> None:
    # TimeoutError is an OSError since Python 3.11: asyncpg's connect and pool timeouts send
    # the consumer to wait for the database rather than fail the request.
    assert is_unreachable(TimeoutError())


def test_a_database_fault_keeps_the_sqlstate_for_health_logs_and_metrics() -> None:
    fault = DatabaseFault(pg.UndefinedColumnError('column "metadata" does not exist'))
    assert fault.sqlstate == "42703"
    assert "UndefinedColumnError" in fault.error
