"""Each outcome answered as the original endpoint answered it (the contract's front door
table), and the request id an Idempotency-Key stands for."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ops.gateway import answers
from ops.gateway.emitter import request_id_for
from schemas.events import REASONS_BY_STATUS, PublishOutcome, Reason, Status

USER = uuid.uuid4()


def outcome(status: Status, reason: Reason | None = None, **fields: object) -> PublishOutcome:
    request = uuid.uuid4()
    values: dict[str, object] = {
        "event_id": uuid.uuid5(uuid.NAMESPACE_URL, str(request)),
        "request_event_id": request,
        "correlation_id": "cid-1",
        "user_id": USER,
        "store_id": uuid.uuid4(),
        "status": status,
        "reason": reason,
        "processing_ms": 1.0,
        "latency_ms": 2.0,
        "processed_at": datetime.now(UTC),
    }
    values.update(fields)
    return PublishOutcome.model_validate(values)


def test_published_is_200_with_the_url_the_no_store_header_and_the_correlation_id() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    answer = answers.answer_for(
        outcome(Status.PUBLISHED, store_url="https://shops.example.com/a", published_at=at)
    )
    assert answer.status == 200
    assert answer.body == {
        "success": True,
        "message": answers.PUBLISHED_MESSAGE,
        "storeUrl": "https://shops.example.com/a",
        "publishedAt": at.isoformat(),
        "correlationId": "cid-1",
    }
    assert answer.headers == {
        "X-Correlation-Id": "cid-1",
        "Cache-Control": "no-store, must-revalidate",
    }


def test_already_published_is_409() -> None:
    answer = answers.answer_for(outcome(Status.ALREADY_PUBLISHED))
    assert (answer.status, answer.body["error"]) == (409, "Store already published")


def test_gated_is_409_precondition_required_with_the_modal_to_open() -> None:
    answer = answers.answer_for(
        outcome(Status.GATED, Reason.MISSING_STEPS, missing_steps=["payments", "theme"])
    )
    assert answer.status == 409
    assert answer.body["error"] == "PRECONDITION_REQUIRED"
    assert answer.body["missingStep"] == "payments"
    assert answer.body["missingSteps"] == ["payments", "theme"]
    assert answer.body["action"] == {
        "type": "open_modal",
        "modal": "payments_setup",
        "prefill": {"returnUrl": "/api/store/publish", "userId": str(USER)},
    }


@pytest.mark.parametrize(
    ("status", "reason", "code", "text"),
    [
        (Status.REJECTED, Reason.NOT_CONFIRMED, 400, "Invalid request body"),
        (Status.REJECTED, Reason.INVALID_PAYLOAD, 400, "Invalid request body"),
        (Status.REJECTED, Reason.USER_NOT_FOUND, 401, "Unauthorized"),
        (Status.REJECTED, Reason.FORBIDDEN, 403, "Forbidden"),
        (Status.REJECTED, Reason.STORE_NOT_FOUND, 404, "Store not found"),
        (Status.REJECTED, Reason.BAD_SIGNATURE, 500, "Failed to publish store"),
        (Status.REJECTED, Reason.TOO_LARGE, 500, "Failed to publish store"),
        (Status.FAILED, Reason.RETRIES_EXHAUSTED, 500, "Failed to publish store"),
        (Status.FAILED, Reason.GATING_UNAVAILABLE, 503, "Gating unavailable"),
    ],
)
def test_refusals_and_failures_answer_per_the_table(
    status: Status, reason: Reason, code: int, text: str
) -> None:
    answer = answers.answer_for(outcome(status, reason))
    assert (answer.status, answer.body["error"]) == (code, text)


def test_not_confirmed_says_that_confirm_publish_must_be_true() -> None:
    answer = answers.answer_for(outcome(Status.REJECTED, Reason.NOT_CONFIRMED))
    assert answer.body["details"] == [
        {"path": ["confirmPublish"], "message": "confirmPublish must be true"}
    ]


def test_retries_exhausted_has_details() -> None:
    answer = answers.answer_for(outcome(Status.FAILED, Reason.RETRIES_EXHAUSTED, attempts=3))
    assert "3 attempt" in str(answer.body["details"])


def test_pending_is_202_with_the_request_id_and_where_to_poll() -> None:
    request = uuid.uuid4()
    answer = answers.pending(request, "cid-9")
    assert answer.status == 202
    assert answer.body == {"status": "pending", "requestId": str(request), "correlationId": "cid-9"}
    assert answer.headers["Location"] == f"/api/store/publish/{request}"


def test_too_many_requests_says_when_to_retry() -> None:
    answer = answers.too_many_requests("cid", 6)
    assert (answer.status, answer.headers["Retry-After"]) == (429, "6")


@given(
    st.sampled_from(
        [(status, reason) for status, reasons in REASONS_BY_STATUS.items() for reason in reasons]
    ),
    st.lists(st.sampled_from(["payments", "theme"]), min_size=1),
)
def test_every_outcome_of_the_contract_has_one_answer_carrying_its_correlation_id(
    status_reason: tuple[Status, Reason | None], steps: list[str]
) -> None:
    status, reason = status_reason
    missing = steps if status is Status.GATED else []
    answer = answers.answer_for(outcome(status, reason, missing_steps=missing))
    assert answer.status in {200, 400, 401, 403, 404, 409, 500, 503}
    assert answer.body["correlationId"] == "cid-1"


def test_the_same_key_from_the_same_user_is_the_same_request() -> None:
    user, other = uuid.uuid4(), uuid.uuid4()
    assert request_id_for(user, "k1") == request_id_for(user, "k1")
    assert request_id_for(user, "k1") != request_id_for(user, "k2")
    assert request_id_for(user, "k1") != request_id_for(other, "k1")
    assert request_id_for(user, None) != request_id_for(user, None)
