"""Outcome events and dead-letter records built from decisions: ids, attempts, headers."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers.decision import Verdict
from consumers.outcomes import (
    InboundRecord,
    dead_letter,
    decided_outcome,
    is_dead_lettered,
    refused_outcome,
    verdict_outcome,
)
from consumers.screening import Asserted, Refusal
from schemas.dead_letter import DLQ_HEADER_NAMES, DeadLetterHeaders, original_headers
from schemas.events import PublishOutcome, PublishRequested, Reason, Status, outcome_event_id
from schemas.jsonschema import JSON_DIR
from schemas.requests import publish_request

NOW = datetime(2026, 1, 31, 12, 0, 5, tzinfo=UTC)
RECEIVED = NOW - timedelta(milliseconds=250)
OCCURRED = NOW - timedelta(seconds=2)
TOPIC = "store.publish.requested"
ORIGINAL_HEADERS = (("signature", b"sha256=abc"), ("traceparent", b"00-trace"))


def record(*, offset: int = 41, partition: int = 3, value: bytes | None = b"{}") -> InboundRecord:
    return InboundRecord(
        topic=TOPIC,
        partition=partition,
        offset=offset,
        key=b"store-key",
        value=value,
        headers=ORIGINAL_HEADERS,
        timestamp_ms=int((NOW - timedelta(seconds=1)).timestamp() * 1000),
        received_at=RECEIVED,
    )


def request(
    *, event_id: uuid.UUID | None = None, correlation_id: str | None = "corr-1"
) -> PublishRequested:
    return publish_request(
        uuid.uuid4(),
        uuid.uuid4(),
        event_id=event_id,
        occurred_at=OCCURRED,
        correlation_id=correlation_id,
        notify_customers=True,
    )


# --- outcome ids ------------------------------------------------------------------------


def test_outcome_event_id_is_uuid5_of_the_request_event_id() -> None:
    req = request()
    outcome = verdict_outcome(record(), req, Verdict(Status.PUBLISHED, None), 1, NOW)
    assert outcome.event_id == outcome_event_id(str(req.event_id))
    assert outcome.event_id.version == 5
    assert outcome.request_event_id == req.event_id


def test_redelivered_request_yields_the_same_outcome_id() -> None:
    req = request()
    first = verdict_outcome(record(offset=1), req, Verdict(Status.PUBLISHED, None), 1, NOW)
    later = NOW + timedelta(hours=1)
    again = verdict_outcome(
        record(offset=900, partition=0), req, Verdict(Status.ALREADY_PUBLISHED, None), 2, later
    )
    assert again.event_id == first.event_id


def test_refused_outcome_id_comes_from_the_record_position() -> None:
    outcome = refused_outcome(
        record(offset=41, partition=3), Refusal(Reason.INVALID_PAYLOAD, "bad"), NOW
    )
    assert outcome.event_id == outcome_event_id(f"{TOPIC}:3:41")
    assert (
        outcome.event_id
        != refused_outcome(
            record(offset=42, partition=3), Refusal(Reason.INVALID_PAYLOAD, "bad"), NOW
        ).event_id
    )


def test_forged_request_cannot_take_the_outcome_id_of_the_genuine_one() -> None:
    genuine = request()
    genuine_outcome = verdict_outcome(
        record(offset=1), genuine, Verdict(Status.PUBLISHED, None), 1, NOW
    )
    refusal = Refusal(Reason.BAD_SIGNATURE, "signature missing", Asserted.of(genuine))
    forged = refused_outcome(record(offset=2), refusal, NOW)
    assert forged.event_id != genuine_outcome.event_id
    # The claimed ids are still reported, so on-call can see whom the forgery named.
    assert forged.request_event_id == genuine.event_id


def test_unparseable_request_outcome_has_null_ids_and_the_position_as_correlation_id() -> None:
    outcome = refused_outcome(record(), Refusal(Reason.INVALID_PAYLOAD, "bad"), NOW)
    assert (outcome.request_event_id, outcome.user_id, outcome.store_id) == (None, None, None)
    assert outcome.correlation_id == f"{TOPIC}:3:41"
    assert outcome.status is Status.REJECTED
    assert outcome.reason is Reason.INVALID_PAYLOAD
    assert outcome.notify_customers is False


def test_invalid_request_outcome_names_the_request_so_its_sender_can_join_it() -> None:
    claimed = Asserted(
        event_id=uuid.uuid4(),
        correlation_id="checkout-42",
        user_id=uuid.uuid4(),
        store_id=uuid.uuid4(),
        notify_customers=True,
    )
    outcome = refused_outcome(record(), Refusal(Reason.INVALID_PAYLOAD, "bad", claimed), NOW)
    assert outcome.request_event_id == claimed.event_id
    assert (outcome.user_id, outcome.store_id) == (claimed.user_id, claimed.store_id)
    assert outcome.correlation_id == "checkout-42"
    assert outcome.notify_customers is True
    # Still the record's position: the claimed id is not authenticated.
    assert outcome.event_id == outcome_event_id(f"{TOPIC}:3:41")


def test_invalid_request_without_a_valid_correlation_id_is_named_by_its_event_id() -> None:
    claimed = Asserted(event_id=uuid.uuid4())
    outcome = refused_outcome(record(), Refusal(Reason.INVALID_PAYLOAD, "bad", claimed), NOW)
    assert outcome.correlation_id == str(claimed.event_id)
    assert (outcome.user_id, outcome.store_id) == (None, None)


# --- attempts and timings ---------------------------------------------------------------


@pytest.mark.parametrize("reason", [Reason.INVALID_PAYLOAD, Reason.TOO_LARGE, Reason.BAD_SIGNATURE])
def test_refusal_on_the_bytes_made_no_attempt(reason: Reason) -> None:
    assert (
        refused_outcome(record(), Refusal(reason, "x", Asserted.of(request())), NOW).attempts == 0
    )


def test_not_confirmed_made_no_attempt_whatever_the_batch_made() -> None:
    outcome = verdict_outcome(
        record(), request(), Verdict(Status.REJECTED, Reason.NOT_CONFIRMED), 2, NOW
    )
    assert outcome.attempts == 0


def test_decisions_after_lookups_report_the_attempts_made() -> None:
    outcome = verdict_outcome(
        record(), request(), Verdict(Status.REJECTED, Reason.FORBIDDEN), 2, NOW
    )
    assert outcome.attempts == 2


def test_failed_outcome_reports_attempts_and_carries_no_store_url() -> None:
    outcome = decided_outcome(
        record(),
        request(),
        status=Status.FAILED,
        reason=Reason.RETRIES_EXHAUSTED,
        attempts=3,
        now=NOW,
    )
    assert (outcome.status, outcome.reason, outcome.attempts) == (
        Status.FAILED,
        Reason.RETRIES_EXHAUSTED,
        3,
    )
    assert outcome.store_url is None
    assert outcome.missing_steps == []


def test_processing_ms_counts_from_receipt_and_latency_ms_from_occurred_at() -> None:
    outcome = verdict_outcome(record(), request(), Verdict(Status.PUBLISHED, None), 1, NOW)
    assert outcome.processing_ms == 250.0
    assert outcome.latency_ms == 2000.0
    assert outcome.processed_at == NOW


def test_verdict_fields_are_carried_onto_the_outcome() -> None:
    req = request(correlation_id=None)
    gated = verdict_outcome(
        record(),
        req,
        Verdict(Status.GATED, Reason.MISSING_STEPS, missing_steps=("theme", "payments")),
        1,
        NOW,
    )
    assert gated.missing_steps == ["theme", "payments"]
    assert gated.correlation_id == str(req.event_id)
    assert gated.notify_customers is True
    published = verdict_outcome(
        record(),
        req,
        Verdict(Status.PUBLISHED, None, store_url="https://s.example/a", published_at=NOW),
        1,
        NOW,
    )
    assert (published.store_url, published.published_at) == ("https://s.example/a", NOW)


@pytest.mark.parametrize(
    ("status", "dead_lettered"),
    [
        (Status.PUBLISHED, False),
        (Status.ALREADY_PUBLISHED, False),
        (Status.GATED, False),
        (Status.REJECTED, True),
        (Status.FAILED, True),
    ],
)
def test_only_rejected_and_failed_are_dead_lettered(status: Status, dead_lettered: bool) -> None:
    assert is_dead_lettered(status) is dead_lettered


# --- dead letters -----------------------------------------------------------------------


def letter(
    error: str = "boom", *, value: bytes | None = b'{"raw": true}'
) -> list[tuple[str, bytes]]:
    out = dead_letter(
        record(value=value),
        dlq_topic="store.publish.dlq",
        reason=Reason.RETRIES_EXHAUSTED,
        error=error,
        attempts=3,
        correlation_id="corr-1",
        now=NOW,
    )
    assert out.topic == "store.publish.dlq"
    assert out.key == b"store-key"
    assert out.value == value
    return list(out.headers)


def test_dead_letter_keeps_key_value_and_original_headers_first() -> None:
    headers = letter()
    assert tuple(headers[: len(ORIGINAL_HEADERS)]) == ORIGINAL_HEADERS
    assert tuple(original_headers(headers)) == ORIGINAL_HEADERS


def test_dead_letter_keeps_a_missing_value_as_missing() -> None:
    out = dead_letter(
        record(value=None),
        dlq_topic="store.publish.dlq",
        reason=Reason.INVALID_PAYLOAD,
        error="record has no value",
        attempts=0,
        correlation_id=f"{TOPIC}:3:41",
        now=NOW,
    )
    assert (out.key, out.value) == (b"store-key", None)


def test_dead_letter_adds_every_dlq_header_with_the_source_position() -> None:
    headers = letter()
    names = [name for name, _ in headers[len(ORIGINAL_HEADERS) :]]
    assert names == list(DLQ_HEADER_NAMES)
    added = DeadLetterHeaders.from_kafka(headers)
    assert added.reason is Reason.RETRIES_EXHAUSTED
    assert added.error == "boom"
    assert (added.source_topic, added.source_partition, added.source_offset) == (TOPIC, 3, 41)
    assert added.attempts == 3
    assert added.failed_at == NOW
    assert added.correlation_id == "corr-1"


@pytest.mark.parametrize(
    "error",
    ["x" * 5000, "é" * 1000, "€" * 700, "🙂" * 600, "a" + "🙂" * 300],
    ids=["ascii", "2-byte", "3-byte", "4-byte", "misaligned 4-byte"],
)
def test_dlq_error_is_at_most_1_kib_of_valid_utf8_even_for_multibyte_text(error: str) -> None:
    value = dict(letter(error))["dlq.error"]
    assert len(value) <= 1024
    assert error.startswith(value.decode("utf-8"))
    # Cut at a character boundary, and no more than one character short of the limit.
    assert len(value) > 1024 - 4


@given(st.text(max_size=3000))
def test_dlq_error_of_any_text_is_a_utf8_prefix_of_at_most_1_kib(error: str) -> None:
    value = dict(letter(error))["dlq.error"]
    assert len(value) <= 1024
    assert error.startswith(value.decode("utf-8"))


def test_the_outcome_schema_accepts_refused_outcomes_with_and_without_ids() -> None:
    schema = json.loads((JSON_DIR / "publish_outcome.v1.json").read_text())
    named = Asserted(event_id=uuid.uuid4(), user_id=uuid.uuid4(), store_id=uuid.uuid4())
    for claimed in (None, named):
        outcome = refused_outcome(record(), Refusal(Reason.INVALID_PAYLOAD, "x", claimed), NOW)
        body = outcome.model_dump(mode="json")
        assert set(schema["required"]) <= set(body)
        for name, value in body.items():
            allowed = schema["properties"][name]
            types = {item.get("type") for item in allowed.get("anyOf", [allowed])}
            if value is None:
                assert "null" in types, name
            elif isinstance(value, str) and "string" in types:
                continue
            else:
                assert types & {"number", "integer", "boolean", "array", "string", None}, name
        assert PublishOutcome.model_validate(body) == outcome
