"""The contract's events: PublishRequested, PublishOutcome and Alert (schema_version 1)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

SCHEMA_VERSION = 1

# Outcome ids are UUID v5 of the request id under this namespace, so a redelivered request
# yields the same outcome id. Changing it changes every outcome id: it is part of the contract.
OUTCOME_NAMESPACE = uuid.UUID("6f1d7b1e-5a0c-4a57-9d0e-2f3b8c4a9e11")


class Status(StrEnum):
    PUBLISHED = "published"
    ALREADY_PUBLISHED = "already_published"
    GATED = "gated"
    REJECTED = "rejected"
    FAILED = "failed"


class Reason(StrEnum):
    MISSING_STEPS = "missing_steps"
    INVALID_PAYLOAD = "invalid_payload"
    TOO_LARGE = "too_large"
    BAD_SIGNATURE = "bad_signature"
    NOT_CONFIRMED = "not_confirmed"
    USER_NOT_FOUND = "user_not_found"
    STORE_NOT_FOUND = "store_not_found"
    FORBIDDEN = "forbidden"
    RETRIES_EXHAUSTED = "retries_exhausted"
    GATING_UNAVAILABLE = "gating_unavailable"


REASONS_BY_STATUS: dict[Status, frozenset[Reason | None]] = {
    Status.PUBLISHED: frozenset({None}),
    Status.ALREADY_PUBLISHED: frozenset({None}),
    Status.GATED: frozenset({Reason.MISSING_STEPS}),
    Status.REJECTED: frozenset(
        {
            Reason.INVALID_PAYLOAD,
            Reason.TOO_LARGE,
            Reason.BAD_SIGNATURE,
            Reason.NOT_CONFIRMED,
            Reason.USER_NOT_FOUND,
            Reason.STORE_NOT_FOUND,
            Reason.FORBIDDEN,
        }
    ),
    Status.FAILED: frozenset({Reason.RETRIES_EXHAUSTED, Reason.GATING_UNAVAILABLE}),
}

DEAD_LETTERED = frozenset({Status.REJECTED, Status.FAILED})


def outcome_event_id(request_key: str) -> uuid.UUID:
    """The outcome's id: derived from the request's event id (or, unparseable, its position)."""
    return uuid.uuid5(OUTCOME_NAMESPACE, request_key)


def _exact_int(value: object) -> object:
    # A Literal matches by equality even in strict mode, so JSON `true` and `1.0` would pass
    # as version 1; the contract's schema_version is an integer.
    if type(value) is not int:
        raise ValueError("schema_version must be the integer 1")
    return value


def _no_nul(value: object) -> object:
    # PostgreSQL text and jsonb cannot hold U+0000: a correlation id carrying one could never
    # be recorded, so it is refused with the payload rather than failing in the database.
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("correlation_id must not contain U+0000")
    return value


class PublishRequested(BaseModel):
    """A creator asks for their store to be published. Strict: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    event_id: uuid.UUID
    schema_version: Annotated[Literal[1], BeforeValidator(_exact_int)]
    occurred_at: AwareDatetime
    correlation_id: (
        Annotated[str, Field(min_length=1, max_length=128), AfterValidator(_no_nul)] | None
    ) = None
    user_id: uuid.UUID
    store_id: uuid.UUID
    confirm_publish: bool
    notify_customers: bool = False

    @property
    def effective_correlation_id(self) -> str:
        return self.correlation_id if self.correlation_id is not None else str(self.event_id)


class PublishOutcome(BaseModel):
    """What became of one request. Exactly one per request event_id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: uuid.UUID
    schema_version: Literal[1] = 1
    request_event_id: uuid.UUID | None
    correlation_id: str
    user_id: uuid.UUID | None
    store_id: uuid.UUID | None
    status: Status
    reason: Reason | None
    missing_steps: list[str] = Field(default_factory=list)
    store_url: str | None = None
    published_at: AwareDatetime | None = None
    notify_customers: bool = False
    attempts: Annotated[int, Field(ge=0)] = 0
    processing_ms: float
    latency_ms: float
    processed_at: AwareDatetime


class OutcomeFacts(BaseModel):
    """What the rates stream reads of a PublishOutcome: the fields its rules divide by.

    A projection, not a second schema: the other fields are skipped unread (a third of the
    stream's CPU went to validating them), and an outcome carrying fields this version does
    not know yet is still counted. A record without these, or of another schema version, is
    not an outcome this stream can count."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: Literal[1] = 1
    status: Status
    attempts: Annotated[int, Field(ge=0)] = 0
    latency_ms: float
    processed_at: AwareDatetime


class AlertState(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class AlertAction(StrEnum):
    PAGE_ONCALL = "page_oncall"
    NOTIFY_TEAM = "notify_team"
    ROLLBACK = "rollback"


class Alert(BaseModel):
    """An alert rule changed state over the outcome stream."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alert: str
    state: AlertState
    action: AlertAction
    value: float
    threshold: float
    for_seconds: float
    window_start: datetime
    window_end: datetime
    evaluated_at: datetime
