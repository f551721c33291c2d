"""Screening a record's raw bytes: size, then shape, then signature; one answer, never a raise."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers.screening import Asserted, Refusal, screen
from schemas.events import PublishRequested, Reason
from schemas.signing import sign

SECRET = b"s3cr3t-signing-key-for-tests"
MAX_BYTES = 65536
SCREENING_REASONS = {Reason.INVALID_PAYLOAD, Reason.TOO_LARGE, Reason.BAD_SIGNATURE}


def body(**changes: Any) -> bytes:
    fields: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "schema_version": 1,
        "occurred_at": "2026-01-31T12:00:00+00:00",
        "user_id": str(uuid.uuid4()),
        "store_id": str(uuid.uuid4()),
        "confirm_publish": True,
    }
    fields.update(changes)
    return json.dumps(fields).encode()


def signed(value: bytes, secret: bytes = SECRET) -> tuple[tuple[str, bytes], ...]:
    return (("signature", sign(value, secret).encode()),)


def refusal(result: PublishRequested | Refusal) -> Refusal:
    assert isinstance(result, Refusal), f"expected a refusal, got {result!r}"
    return result


# --- size -------------------------------------------------------------------------------


def padded_to(size: int) -> bytes:
    value = body()
    # Trailing whitespace is valid JSON, so the value stays a valid request at any size.
    return value + b" " * (size - len(value))


def test_value_of_exactly_max_bytes_is_accepted() -> None:
    value = padded_to(1024)
    assert len(value) == 1024
    assert isinstance(screen(value, (), max_bytes=1024, secret=None), PublishRequested)


def test_value_of_max_bytes_plus_one_is_too_large() -> None:
    value = padded_to(1025)
    assert refusal(screen(value, (), max_bytes=1024, secret=None)).reason is Reason.TOO_LARGE


def test_oversized_value_is_refused_unread_before_parsing_or_signature() -> None:
    garbage = b"\xff" * (MAX_BYTES + 1)
    result = refusal(
        screen(garbage, (("signature", b"sha256=00"),), max_bytes=MAX_BYTES, secret=SECRET)
    )
    assert result.reason is Reason.TOO_LARGE
    assert result.claimed is None


def test_default_limit_of_64_kib_refuses_a_65537_byte_value() -> None:
    assert refusal(screen(padded_to(65537), (), max_bytes=MAX_BYTES, secret=None)).reason is (
        Reason.TOO_LARGE
    )


# --- shape ------------------------------------------------------------------------------


def test_record_without_value_is_invalid_payload() -> None:
    assert refusal(screen(None, (), max_bytes=MAX_BYTES, secret=None)).reason is (
        Reason.INVALID_PAYLOAD
    )


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"not json",
        b"\xff\xfe\x00garbage",
        b"[" * 50_000 + b"]" * 50_000,
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        body(confirm_publish="true"),
        body(user_id=123),
        body(occurred_at="2026-01-31T12:00:00"),
        body(schema_version=2),
        body(extra="field"),
        b'{"schema_version": 1' + b"0" * 5000 + b"}",
    ],
    ids=[
        "empty",
        "text",
        "invalid utf-8",
        "nested arrays 50k",
        "nested objects 50k",
        "string bool",
        "int uuid",
        "naive timestamp",
        "version 2",
        "unknown field",
        "huge number",
    ],
)
def test_unparseable_or_invalid_value_is_invalid_payload(value: bytes) -> None:
    result = refusal(screen(value, (), max_bytes=1_000_000, secret=None))
    assert result.reason is Reason.INVALID_PAYLOAD
    assert result.error


def test_invalid_payload_error_names_fields_but_does_not_echo_the_value() -> None:
    leaked = "x" * 129 + "-private-data"
    result = refusal(screen(body(correlation_id=leaked), (), max_bytes=MAX_BYTES, secret=None))
    assert "correlation_id" in result.error
    assert "private-data" not in result.error


# --- signature --------------------------------------------------------------------------


def test_signature_is_sha256_prefix_and_lowercase_hex_hmac_of_the_value() -> None:
    value = body()
    expected = "sha256=" + hmac.new(SECRET, value, hashlib.sha256).hexdigest()
    assert sign(value, SECRET) == expected


def test_correctly_signed_request_is_accepted() -> None:
    value = body()
    result = screen(value, signed(value), max_bytes=MAX_BYTES, secret=SECRET)
    assert isinstance(result, PublishRequested)


def test_signature_among_other_headers_is_found() -> None:
    value = body()
    headers = (("traceparent", b"00-abc"), *signed(value), ("x-source", b"shop"))
    assert isinstance(screen(value, headers, max_bytes=MAX_BYTES, secret=SECRET), PublishRequested)


def test_unsigned_request_is_accepted_when_no_secret_is_configured() -> None:
    assert isinstance(screen(body(), (), max_bytes=MAX_BYTES, secret=None), PublishRequested)


def bad_signature_cases() -> list[tuple[str, bytes, tuple[tuple[str, bytes], ...]]]:
    value = body()
    good = sign(value, SECRET)
    # Signed as a draft-only request, then altered in flight to publish.
    unconfirmed = body(confirm_publish=False)
    altered = unconfirmed.replace(b'"confirm_publish": false', b'"confirm_publish": true')
    assert altered != unconfirmed
    return [
        ("missing header", value, ()),
        ("other header only", value, (("Signature", good.encode()),)),
        ("wrong signature", value, (("signature", b"sha256=" + b"0" * 64),)),
        ("other secret", value, signed(value, b"another-secret")),
        ("altered body", altered, signed(unconfirmed)),
        ("uppercase hex", value, (("signature", ("sha256=" + good[7:].upper()).encode()),)),
        ("no prefix", value, (("signature", good[7:].encode()),)),
        ("empty", value, (("signature", b""),)),
        ("duplicate identical", value, (*signed(value), *signed(value))),
        ("duplicate good and bad", value, (*signed(value), ("signature", b"sha256=00"))),
        ("non-ascii", value, (("signature", "sha256=é".encode()),)),
    ]


each_bad_signature = pytest.mark.parametrize(
    ("value", "headers"),
    [pytest.param(value, headers, id=name) for name, value, headers in bad_signature_cases()],
)


@each_bad_signature
def test_missing_or_wrong_signature_is_bad_signature(
    value: bytes, headers: tuple[tuple[str, bytes], ...]
) -> None:
    result = refusal(screen(value, headers, max_bytes=MAX_BYTES, secret=SECRET))
    assert result.reason is Reason.BAD_SIGNATURE
    # Parsed but untrusted: kept for the outcome's ids, never for a decision.
    assert result.claimed is not None
    assert result.claimed == Asserted.of(PublishRequested.model_validate_json(value))


@each_bad_signature
def test_bad_signature_error_never_contains_the_secret_or_expected_signature(
    value: bytes, headers: tuple[tuple[str, bytes], ...]
) -> None:
    result = refusal(screen(value, headers, max_bytes=MAX_BYTES, secret=SECRET))
    expected = sign(value, SECRET)
    for secretish in (SECRET.decode(), expected, expected[7:], expected[7:].upper()):
        assert secretish not in result.error
        assert secretish not in repr(result)


def test_invalid_payload_is_reported_before_the_signature_is_checked() -> None:
    result = refusal(screen(b"not json", (), max_bytes=MAX_BYTES, secret=SECRET))
    assert result.reason is Reason.INVALID_PAYLOAD


# --- any input --------------------------------------------------------------------------

header_lists = st.lists(
    st.tuples(st.sampled_from(["signature", "traceparent", "", "x"]) | st.text(), st.binary()),
    max_size=4,
).map(tuple)

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
field_values = (
    json_values
    | st.uuids().map(str)
    | st.sampled_from(["2026-01-31T12:00:00+00:00", "2026-01-31T12:00:00", "", "true", 1, True])
)
# Requests near the contract: each field present or not, with a plausible or arbitrary value.
near_requests = st.fixed_dictionaries(
    {},
    optional={
        name: field_values
        for name in (
            "event_id",
            "schema_version",
            "occurred_at",
            "correlation_id",
            "user_id",
            "store_id",
            "confirm_publish",
            "notify_customers",
            "unknown",
        )
    },
).map(lambda fields: json.dumps(fields).encode())
any_values = (
    st.binary(max_size=2048) | near_requests | json_values.map(lambda v: json.dumps(v).encode())
)


def check_one_contract_answer(
    value: bytes, headers: tuple[tuple[str, bytes], ...], secret: bytes | None, max_bytes: int
) -> None:
    result = screen(value, headers, max_bytes=max_bytes, secret=secret)
    if isinstance(result, Refusal):
        assert result.reason in SCREENING_REASONS
        if secret is not None:
            assert secret.decode("utf-8", "replace") not in result.error
    else:
        assert isinstance(result, PublishRequested)
        assert len(value) <= max_bytes


@given(
    value=any_values,
    headers=header_lists,
    secret=st.none() | st.just(SECRET),
    max_bytes=st.integers(1, 4096),
)
def test_any_bytes_and_headers_yield_exactly_one_contract_answer_never_a_raise(
    value: bytes, headers: tuple[tuple[str, bytes], ...], secret: bytes | None, max_bytes: int
) -> None:
    check_one_contract_answer(value, headers, secret, max_bytes)


@given(fields=near_requests, sign_it=st.booleans())
def test_signed_requests_are_accepted_exactly_when_they_parse(fields: bytes, sign_it: bool) -> None:
    headers = signed(fields) if sign_it else ()
    result = screen(fields, headers, max_bytes=MAX_BYTES, secret=SECRET)
    try:
        PublishRequested.model_validate_json(fields)
        parses = True
    except ValueError:
        parses = False
    assert isinstance(result, PublishRequested) == (parses and sign_it)


# --- what a refused request still names -------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"admin": True},
        {"confirm_publish": "true"},
        {"schema_version": 2},
        {"occurred_at": "2026-01-31T12:00:00"},
    ],
    ids=["unknown field", "wrong type", "wrong schema_version", "timestamp without offset"],
)
def test_invalid_request_keeps_each_id_that_is_valid_on_its_own(change: dict[str, Any]) -> None:
    event_id, user_id, store_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    value = body(
        event_id=str(event_id),
        user_id=str(user_id),
        store_id=str(store_id),
        correlation_id="checkout-42",
        notify_customers=True,
        **change,
    )
    result = refusal(screen(value, (), max_bytes=MAX_BYTES, secret=None))
    assert result.reason is Reason.INVALID_PAYLOAD
    assert result.claimed is not None
    assert (result.claimed.event_id, result.claimed.user_id, result.claimed.store_id) == (
        event_id,
        user_id,
        store_id,
    )
    assert result.claimed.correlation_id == "checkout-42"
    assert result.claimed.notify_customers is True


def test_invalid_fields_are_left_out_one_by_one() -> None:
    value = body(
        user_id=123,
        store_id="not-a-uuid",
        correlation_id="x" * 129,
        notify_customers="yes",
        occurred_at="yesterday",
    )
    result = refusal(screen(value, (), max_bytes=MAX_BYTES, secret=None))
    assert result.claimed is not None
    assert result.claimed.event_id is not None
    assert (result.claimed.user_id, result.claimed.store_id) == (None, None)
    assert result.claimed.correlation_id is None
    assert result.claimed.notify_customers is False
    assert result.claimed.occurred_at is None


def test_a_nul_in_the_correlation_id_is_not_kept() -> None:
    result = refusal(screen(body(correlation_id="a\x00b"), (), max_bytes=MAX_BYTES, secret=None))
    assert result.claimed is not None
    assert result.claimed.correlation_id is None
    assert result.claimed.event_id is not None


@pytest.mark.parametrize(
    "value",
    [b"not json", b"[1, 2]", b'"a string"', b"\xff\xfe", b"[" * 50_000 + b"]" * 50_000],
    ids=["text", "array", "string", "invalid utf-8", "nested 50k"],
)
def test_a_value_that_is_not_a_json_object_names_nothing(value: bytes) -> None:
    assert refusal(screen(value, (), max_bytes=1_000_000, secret=None)).claimed is None
