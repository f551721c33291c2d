"""What the gateway answers, as the original endpoint did: a pure function of an outcome (or
of why no outcome was asked for) to a status, a JSON body and headers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from schemas.events import PublishOutcome, Reason, Status

ROUTE = "/api/store/publish"
PUBLISHED_MESSAGE = "Store published successfully"
GATED_MESSAGE = "Complete the required onboarding steps before publishing your store"
Details = list[dict[str, object]]
NOT_CONFIRMED: Details = [{"path": ["confirmPublish"], "message": "confirmPublish must be true"}]


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, object]
    headers: dict[str, str] = field(default_factory=dict)


def error(status: int, text: str, correlation_id: str, **extra: object) -> Answer:
    return Answer(status, {"error": text, **extra, "correlationId": correlation_id})


def unauthorized(correlation_id: str) -> Answer:
    return error(401, "Unauthorized", correlation_id)


def store_not_found(correlation_id: str) -> Answer:
    return error(404, "Store not found", correlation_id)


def unreadable_json(correlation_id: str) -> Answer:
    return error(400, "Invalid JSON in request body", correlation_id)


def invalid_body(correlation_id: str, details: Details) -> Answer:
    return error(400, "Invalid request body", correlation_id, details=details)


def body_too_large(correlation_id: str, limit: int) -> Answer:
    details: Details = [{"path": [], "message": f"the body must be at most {limit} bytes"}]
    return error(413, "Invalid request body", correlation_id, details=details)


def too_many_requests(correlation_id: str, retry_after_s: int) -> Answer:
    answer = error(429, "Too many requests", correlation_id)
    return Answer(answer.status, answer.body, {"Retry-After": str(retry_after_s)})


def unavailable(correlation_id: str) -> Answer:
    """The store or the pause switch could not be read: nothing was asked, fail closed."""
    return error(503, "Service unavailable", correlation_id)


def pending(request_id: uuid.UUID, correlation_id: str) -> Answer:
    return Answer(
        202,
        {"status": "pending", "requestId": str(request_id), "correlationId": correlation_id},
        {"Location": f"{ROUTE}/{request_id}", "Cache-Control": "no-store"},
    )


def unknown_request(correlation_id: str) -> Answer:
    return error(404, "Request not found", correlation_id)


def answer_for(outcome: PublishOutcome) -> Answer:
    """The original endpoint's answer to the decided request `outcome` is about."""
    cid = outcome.correlation_id
    if outcome.status is Status.PUBLISHED:
        return Answer(
            200,
            {
                "success": True,
                "message": PUBLISHED_MESSAGE,
                "storeUrl": outcome.store_url,
                "publishedAt": outcome.published_at.isoformat() if outcome.published_at else None,
                "correlationId": cid,
            },
            {"X-Correlation-Id": cid, "Cache-Control": "no-store, must-revalidate"},
        )
    if outcome.status is Status.ALREADY_PUBLISHED:
        return error(409, "Store already published", cid)
    if outcome.status is Status.GATED:
        return error(
            409,
            "PRECONDITION_REQUIRED",
            cid,
            message=GATED_MESSAGE,
            missingStep=outcome.missing_steps[0] if outcome.missing_steps else None,
            missingSteps=list(outcome.missing_steps),
            action={
                "type": "open_modal",
                "modal": "payments_setup",
                "prefill": {"returnUrl": ROUTE, "userId": str(outcome.user_id)},
            },
        )
    if outcome.status is Status.FAILED:
        if outcome.reason is Reason.GATING_UNAVAILABLE:
            return error(503, "Gating unavailable", cid)
        details = f"{outcome.reason}: gave up after {outcome.attempts} attempt(s)"
        return error(500, "Failed to publish store", cid, details=details)
    return _rejected(outcome.reason, cid)


def _rejected(reason: Reason | None, cid: str) -> Answer:
    if reason is Reason.NOT_CONFIRMED:
        return invalid_body(cid, NOT_CONFIRMED)
    if reason is Reason.INVALID_PAYLOAD:
        details: Details = [{"path": [], "message": "the request was refused as invalid"}]
        return invalid_body(cid, details)
    if reason is Reason.USER_NOT_FOUND:
        return unauthorized(cid)
    if reason is Reason.FORBIDDEN:
        return error(403, "Forbidden", cid)
    if reason is Reason.STORE_NOT_FOUND:
        return store_not_found(cid)
    # too_large, bad_signature: the gateway's own request was refused on its bytes, which
    # only a misconfiguration (a signing secret unlike the consumer's) can cause.
    return error(500, "Failed to publish store", cid, details=f"request refused: {reason}")
