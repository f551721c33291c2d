"""What a batch's decisions change in the database, as values: built here, written by the
repository. Pure."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from consumers.decision import Verdict
from schemas.events import PublishOutcome, PublishRequested


# NamedTuples for what is made per record (see consumers/outcomes.py).
class Publication(NamedTuple):
    request: PublishRequested
    store_url: str
    published_at: datetime


class AnalyticsRow(NamedTuple):
    user_id: uuid.UUID
    event_type: str
    step_id: str | None
    version: int | None
    metadata: dict[str, object]
    correlation_id: str
    # The request that wrote it: unique with the type and step, so a request decided again
    # after its idempotency record is gone writes no second row.
    request_event_id: uuid.UUID | None = None


class RecordedOutcome(NamedTuple):
    request: PublishRequested
    status: str
    reason: str | None
    outcome_json: str
    attempts: int
    partition: int
    offset: int


class Decided(NamedTuple):
    """A request decided in this batch (not a repeat), with the outcome built for it."""

    request: PublishRequested
    verdict: Verdict
    outcome: PublishOutcome
    outcome_json: str
    partition: int
    offset: int


@dataclass(frozen=True)
class Effects:
    publications: list[Publication] = field(default_factory=list)
    analytics: list[AnalyticsRow] = field(default_factory=list)
    recorded: list[RecordedOutcome] = field(default_factory=list)


def effects_of(decided: Iterable[Decided], active_versions: Mapping[str, int]) -> Effects:
    """Publications and their `store.published` rows, a `gating.blocked` row per missing step,
    and the idempotency record of every decision."""
    effects = Effects()
    for item in decided:
        request, verdict = item.request, item.verdict
        # The outcome's, made from the same request: one str(UUID) (0.6 µs) fewer.
        correlation_id = item.outcome.correlation_id
        if verdict.publish and verdict.store_url and verdict.published_at:
            effects.publications.append(
                Publication(request, verdict.store_url, verdict.published_at)
            )
            effects.analytics.append(
                AnalyticsRow(
                    request.user_id,
                    "store.published",
                    None,
                    None,
                    {
                        "action": "store.publish",
                        "storeId": str(request.store_id),
                        "storeUrl": verdict.store_url,
                        "notifyCustomers": request.notify_customers,
                        "requestEventId": str(request.event_id),
                    },
                    correlation_id,
                    request.event_id,
                )
            )
        for step in verdict.missing_steps:
            effects.analytics.append(
                AnalyticsRow(
                    request.user_id,
                    "gating.blocked",
                    step,
                    active_versions.get(step),
                    {
                        "action": "store.publish",
                        "isCritical": True,
                        "storeId": str(request.store_id),
                        "requestEventId": str(request.event_id),
                    },
                    correlation_id,
                    request.event_id,
                )
            )
        effects.recorded.append(
            RecordedOutcome(
                request,
                verdict.status.value,
                verdict.reason.value if verdict.reason else None,
                item.outcome_json,
                item.outcome.attempts,
                item.partition,
                item.offset,
            )
        )
    return effects
