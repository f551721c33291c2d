"""Whose fault a failure is: the consumer pauses for the database's and its own, and fails a
request only for what is tied to that request."""

from __future__ import annotations

import asyncpg
import pytest
from aiokafka.errors import KafkaConnectionError, NotLeaderForPartitionError, UnknownError

from ops.runtime.faults import Fault, classify, describe, is_worth_retrying


def _postgres(code: str) -> asyncpg.PostgresError:
    # asyncpg maps each SQLSTATE to its class; a code it does not know gives the base class.
    cls = asyncpg.exceptions._base.PostgresMessageMeta.get_message_class_for_sqlstate(code)
    error = cls(f"error {code}")
    error.sqlstate = code  # type: ignore[attr-defined]
    return error


@pytest.mark.parametrize(
    ("code", "fault"),
    [
        ("40001", Fault.TRANSIENT),  # serialization failure
        ("40P01", Fault.TRANSIENT),  # deadlock
        ("55P03", Fault.TRANSIENT),  # lock timeout
        ("57014", Fault.TRANSIENT),  # statement timeout
        ("08006", Fault.UNREACHABLE),  # connection failure
        ("57P01", Fault.UNREACHABLE),  # admin shutdown
        ("57P03", Fault.UNREACHABLE),  # cannot connect now
        ("25006", Fault.SYSTEMIC),  # read-only transaction (a standby after failover)
        ("42501", Fault.SYSTEMIC),  # privilege revoked
        ("42P01", Fault.SYSTEMIC),  # table dropped or renamed
        ("42703", Fault.SYSTEMIC),  # column renamed
        ("42883", Fault.SYSTEMIC),  # function missing
        ("53100", Fault.SYSTEMIC),  # disk full
        ("53300", Fault.SYSTEMIC),  # too many connections
        ("28P01", Fault.SYSTEMIC),  # password changed
        ("3D000", Fault.SYSTEMIC),  # database missing
        ("XX000", Fault.SYSTEMIC),  # internal error
        ("22P02", Fault.REQUEST),  # invalid text representation: the request's data
        ("22001", Fault.REQUEST),  # string too long
        ("23505", Fault.REQUEST),  # unique violation on the request's rows
        ("23503", Fault.REQUEST),  # foreign key violation
    ],
)
def test_each_sqlstate_is_classified_by_whose_fault_it_is(code: str, fault: Fault) -> None:
    assert classify(_postgres(code)) is fault


@pytest.mark.parametrize(
    "error",
    [OSError("refused"), TimeoutError(), ConnectionResetError(), KafkaConnectionError()],
)
def test_a_lost_connection_is_unreachable(error: BaseException) -> None:
    assert classify(error) is Fault.UNREACHABLE
    assert is_worth_retrying(error)


@pytest.mark.parametrize("error", [TypeError("bug"), KeyError("x"), RuntimeError("invariant")])
def test_an_unforeseen_exception_of_our_own_is_systemic_never_the_requests(
    error: BaseException,
) -> None:
    assert classify(error) is Fault.SYSTEMIC
    assert not is_worth_retrying(error)


def test_kafka_errors_are_transient_when_retriable_else_systemic() -> None:
    assert classify(NotLeaderForPartitionError()) is Fault.TRANSIENT
    assert classify(UnknownError()) is Fault.SYSTEMIC


def test_a_description_names_the_type_the_message_and_the_sqlstate() -> None:
    assert describe(_postgres("42703")) == "UndefinedColumnError: error 42703 (SQLSTATE 42703)"
    assert describe(ValueError("x")) == "ValueError: x"
