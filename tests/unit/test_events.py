"""The contract's event models: the valid shapes parse, every invalid variant is refused."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.events import (
    OUTCOME_NAMESPACE,
    REASONS_BY_STATUS,
    Alert,
    PublishOutcome,
    PublishRequested,
    Reason,
    Status,
    outcome_event_id,
)

EVENT_ID = "3f0c1a52-9d0e-4b8a-8c55-0d5a2f1e7b10"
USER_ID = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
STORE_ID = "5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a"


def valid(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_id": EVENT_ID,
        "schema_version": 1,
        "occurred_at": "2026-01-31T12:00:00+01:00",
        "correlation_id": "req-42",
        "user_id": USER_ID,
        "store_id": STORE_ID,
        "confirm_publish": True,
        "notify_customers": True,
    }
    body.update(changes)
    return body


def parse(body: dict[str, Any] | bytes) -> PublishRequested:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return PublishRequested.model_validate_json(raw)


def without(field: str) -> dict[str, Any]:
    body = valid()
    del body[field]
    return body


# --- valid shapes -----------------------------------------------------------------------


def test_full_request_parses_with_every_field_typed() -> None:
    request = parse(valid())
    assert request.event_id == uuid.UUID(EVENT_ID)
    assert request.user_id == uuid.UUID(USER_ID)
    assert request.store_id == uuid.UUID(STORE_ID)
    assert request.occurred_at == datetime(2026, 1, 31, 11, 0, tzinfo=UTC)
    assert request.confirm_publish is True
    assert request.notify_customers is True
    assert request.effective_correlation_id == "req-42"


def test_optional_fields_may_be_absent_and_take_contract_defaults() -> None:
    body = valid()
    del body["correlation_id"], body["notify_customers"]
    request = parse(body)
    assert request.correlation_id is None
    assert request.notify_customers is False


def test_event_id_stands_in_for_an_absent_correlation_id() -> None:
    body = valid()
    del body["correlation_id"]
    assert parse(body).effective_correlation_id == EVENT_ID


def test_null_correlation_id_is_treated_as_absent() -> None:
    assert parse(valid(correlation_id=None)).effective_correlation_id == EVENT_ID


@pytest.mark.parametrize(
    "occurred_at",
    ["2026-01-31T12:00:00Z", "2026-01-31T12:00:00.123456+00:00", "2026-01-31T12:00:00-05:30"],
)
def test_rfc3339_timestamps_with_any_offset_are_accepted(occurred_at: str) -> None:
    assert parse(valid(occurred_at=occurred_at)).occurred_at.tzinfo is not None


@pytest.mark.parametrize("length", [1, 128])
def test_correlation_id_of_1_to_128_chars_is_accepted(length: int) -> None:
    assert parse(valid(correlation_id="c" * length)).correlation_id == "c" * length


def test_confirm_publish_false_parses_so_the_decision_can_reject_it() -> None:
    assert parse(valid(confirm_publish=False)).confirm_publish is False


# --- invalid variants -------------------------------------------------------------------


def refused_fields(body: dict[str, Any] | bytes) -> set[str]:
    with pytest.raises(ValidationError) as caught:
        parse(body)
    return {str(error["loc"][0]) if error["loc"] else "" for error in caught.value.errors()}


def test_unknown_field_is_refused() -> None:
    assert refused_fields(valid(is_admin=True)) == {"is_admin"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("confirm_publish", "true"),
        ("confirm_publish", 1),
        ("confirm_publish", None),
        ("notify_customers", "false"),
        ("notify_customers", 0),
        ("user_id", 12345),
        ("store_id", 12345),
        ("event_id", 12345),
        ("schema_version", "1"),
        ("schema_version", 1.0),
        ("schema_version", True),
        ("correlation_id", 42),
        ("occurred_at", 1767182400),
        ("user_id", ["a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"]),
        ("store_id", {"id": STORE_ID}),
    ],
)
def test_wrong_type_is_refused_without_coercion(field: str, value: object) -> None:
    assert refused_fields(valid(**{field: value})) == {field}


@pytest.mark.parametrize(
    "bad_uuid",
    [
        "",
        "not-a-uuid",
        "3f0c1a52-9d0e-4b8a-8c55-0d5a2f1e7b1",
        "3f0c1a52-9d0e-4b8a-8c55-0d5a2f1e7b10x",
    ],
)
@pytest.mark.parametrize("field", ["event_id", "user_id", "store_id"])
def test_bad_uuid_is_refused(field: str, bad_uuid: str) -> None:
    assert refused_fields(valid(**{field: bad_uuid})) == {field}


@pytest.mark.parametrize(
    "occurred_at", ["2026-01-31T12:00:00", "2026-01-31", "yesterday", "2026-13-01T00:00:00Z"]
)
def test_naive_or_malformed_timestamp_is_refused(occurred_at: str) -> None:
    assert refused_fields(valid(occurred_at=occurred_at)) == {"occurred_at"}


@pytest.mark.parametrize("version", [0, 2, -1, 100])
def test_schema_version_other_than_1_is_refused(version: int) -> None:
    assert refused_fields(valid(schema_version=version)) == {"schema_version"}


@pytest.mark.parametrize("correlation_id", ["", "c" * 129, "c" * 10_000])
def test_correlation_id_empty_or_over_128_chars_is_refused(correlation_id: str) -> None:
    assert refused_fields(valid(correlation_id=correlation_id)) == {"correlation_id"}


@pytest.mark.parametrize(
    "field",
    ["event_id", "schema_version", "occurred_at", "user_id", "store_id", "confirm_publish"],
)
def test_missing_required_field_is_refused(field: str) -> None:
    assert refused_fields(without(field)) == {field}


@pytest.mark.parametrize(
    "raw",
    [
        b'{"schema_version": 1' + b"0" * 5000 + b"}",
        b'{"schema_version": 1e400}',
        b'{"schema_version": -1e400}',
        json.dumps(valid(schema_version=10**40)).encode(),
    ],
    ids=["5000-digit int", "float overflow", "negative float overflow", "40-digit int"],
)
def test_huge_numbers_are_refused_not_raised(raw: bytes) -> None:
    with pytest.raises(ValidationError):
        parse(raw)


@pytest.mark.parametrize(
    "raw",
    [b"[" * 50_000 + b"]" * 50_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000],
    ids=["arrays", "objects"],
)
def test_json_nested_50k_levels_deep_is_a_validation_error(raw: bytes) -> None:
    with pytest.raises(ValidationError):
        parse(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe{}",
        json.dumps(valid()).encode().replace(b"req-42", b"req-\xc3\x28"),
        b'{"correlation_id": "\xed\xa0\x80"}',
    ],
    ids=["bom garbage", "invalid continuation byte", "encoded surrogate"],
)
def test_invalid_utf8_is_a_validation_error(raw: bytes) -> None:
    with pytest.raises(ValidationError):
        parse(raw)


@pytest.mark.parametrize("raw", [b"", b"null", b"[]", b'"text"', b"1", b"{", b"{}{}"])
def test_values_that_are_not_one_json_object_are_refused(raw: bytes) -> None:
    with pytest.raises(ValidationError):
        parse(raw)


def test_request_is_immutable_once_parsed() -> None:
    request = parse(valid())
    with pytest.raises(ValidationError):
        request.confirm_publish = False  # type: ignore[misc]


# --- outcomes and alerts ----------------------------------------------------------------


def test_outcome_event_id_is_uuid5_of_the_request_id_under_the_contract_namespace() -> None:
    assert outcome_event_id(EVENT_ID) == uuid.uuid5(OUTCOME_NAMESPACE, EVENT_ID)
    assert outcome_event_id(EVENT_ID).version == 5
    assert outcome_event_id(EVENT_ID) == outcome_event_id(EVENT_ID)
    assert outcome_event_id(EVENT_ID) != outcome_event_id(USER_ID)


def test_every_status_has_its_contract_reasons_and_every_reason_one_status() -> None:
    assert set(REASONS_BY_STATUS) == set(Status)
    reasons = [r for rs in REASONS_BY_STATUS.values() for r in rs if r is not None]
    assert len(reasons) == len(set(reasons))
    assert set(reasons) == set(Reason)
    assert REASONS_BY_STATUS[Status.PUBLISHED] == {None}
    assert REASONS_BY_STATUS[Status.ALREADY_PUBLISHED] == {None}
    assert REASONS_BY_STATUS[Status.GATED] == {Reason.MISSING_STEPS}


def outcome(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_id": str(outcome_event_id(EVENT_ID)),
        "schema_version": 1,
        "request_event_id": EVENT_ID,
        "correlation_id": "req-42",
        "user_id": USER_ID,
        "store_id": STORE_ID,
        "status": "published",
        "reason": None,
        "missing_steps": [],
        "store_url": "https://shops.example.com/shop",
        "published_at": "2026-01-31T12:00:01+00:00",
        "notify_customers": False,
        "attempts": 1,
        "processing_ms": 12.5,
        "latency_ms": 1000.0,
        "processed_at": "2026-01-31T12:00:01+00:00",
    }
    body.update(changes)
    return body


def test_outcome_round_trips_through_json_unchanged() -> None:
    parsed = PublishOutcome.model_validate_json(json.dumps(outcome()))
    assert PublishOutcome.model_validate_json(parsed.model_dump_json()) == parsed
    assert json.loads(parsed.model_dump_json())["status"] == "published"


def test_unparseable_request_outcome_has_null_ids() -> None:
    parsed = PublishOutcome.model_validate(
        outcome(
            request_event_id=None,
            user_id=None,
            store_id=None,
            status="rejected",
            reason="invalid_payload",
        )
    )
    assert parsed.request_event_id is None
    assert parsed.user_id is None


@pytest.mark.parametrize(
    "changes",
    [
        {"attempts": -1},
        {"status": "pending"},
        {"reason": "because"},
        {"schema_version": 2},
        {"extra": 1},
        {"processed_at": "2026-01-31T12:00:01"},
    ],
)
def test_outcome_outside_the_contract_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        PublishOutcome.model_validate(outcome(**changes))


def test_alert_carries_the_contract_fields() -> None:
    start = datetime(2026, 1, 31, 12, 0, tzinfo=timezone(timedelta(hours=1)))
    alert = Alert.model_validate(
        {
            "alert": "store_publish_high_error_rate",
            "state": "firing",
            "action": "page_oncall",
            "value": 0.07,
            "threshold": 0.05,
            "for_seconds": 300,
            "window_start": start.isoformat(),
            "window_end": (start + timedelta(minutes=5)).isoformat(),
            "evaluated_at": (start + timedelta(minutes=5)).isoformat(),
        }
    )
    assert set(json.loads(alert.model_dump_json())) == {
        "alert",
        "state",
        "action",
        "value",
        "threshold",
        "for_seconds",
        "window_start",
        "window_end",
        "evaluated_at",
    }
    with pytest.raises(ValidationError):
        Alert.model_validate({**alert.model_dump(), "state": "pending"})


def test_a_correlation_id_with_a_nul_character_is_refused_since_postgresql_cannot_store_it() -> (
    None
):
    body = {
        "event_id": "0b7c2d1e-6a0f-4c39-9f3e-9f6a3b2c1d00",
        "schema_version": 1,
        "occurred_at": "2026-11-24T10:00:00+00:00",
        "correlation_id": "abc\u0000def",
        "user_id": "1b7c2d1e-6a0f-4c39-9f3e-9f6a3b2c1d00",
        "store_id": "2b7c2d1e-6a0f-4c39-9f3e-9f6a3b2c1d00",
        "confirm_publish": True,
    }
    with pytest.raises(ValidationError, match="U\\+0000"):
        PublishRequested.model_validate_json(json.dumps(body))
