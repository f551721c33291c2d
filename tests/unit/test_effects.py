"""What the decisions write: one publication and one `store.published` row per publish, a
`gating.blocked` row per missing step, and an idempotency record for every decision."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from consumers.decision import Verdict
from consumers.effects import Decided, effects_of
from schemas.events import PublishOutcome, Reason, Status, outcome_event_id
from schemas.requests import publish_request

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _decided(verdict: Verdict, offset: int) -> Decided:
    request = publish_request(
        uuid.uuid4(), uuid.uuid4(), occurred_at=NOW, correlation_id=f"c{offset}"
    )
    outcome = PublishOutcome(
        event_id=outcome_event_id(str(request.event_id)),
        request_event_id=request.event_id,
        correlation_id=request.effective_correlation_id,
        user_id=request.user_id,
        store_id=request.store_id,
        status=verdict.status,
        reason=verdict.reason,
        missing_steps=list(verdict.missing_steps),
        attempts=1,
        processing_ms=1.0,
        latency_ms=2.0,
        processed_at=NOW,
    )
    return Decided(request, verdict, outcome, outcome.model_dump_json(), 0, offset)


def test_a_publish_writes_the_store_one_published_row_and_its_record() -> None:
    item = _decided(
        Verdict(Status.PUBLISHED, None, store_url="https://s/x", published_at=NOW, publish=True), 1
    )
    effects = effects_of([item], {"payments": 3})
    assert [p.request for p in effects.publications] == [item.request]
    assert [(a.event_type, a.correlation_id) for a in effects.analytics] == [
        ("store.published", "c1")
    ]
    assert [r.status for r in effects.recorded] == ["published"]


def test_a_gated_request_writes_one_blocked_row_per_missing_step_at_its_active_version() -> None:
    item = _decided(
        Verdict(Status.GATED, Reason.MISSING_STEPS, missing_steps=("payments", "theme")), 2
    )
    effects = effects_of([item], {"payments": 3})
    assert effects.publications == []
    rows = [(a.event_type, a.step_id, a.version) for a in effects.analytics]
    assert rows == [("gating.blocked", "payments", 3), ("gating.blocked", "theme", None)]
    assert all(a.metadata["isCritical"] is True for a in effects.analytics)
    assert all(a.metadata["action"] == "store.publish" for a in effects.analytics)


def test_a_refusal_writes_only_its_record_and_an_already_published_store_nothing_else() -> None:
    refused = _decided(Verdict(Status.REJECTED, Reason.FORBIDDEN), 3)
    already = _decided(Verdict(Status.ALREADY_PUBLISHED, None, store_url="https://s/y"), 4)
    effects = effects_of([refused, already], {})
    assert effects.publications == []
    assert effects.analytics == []
    assert [(r.status, r.reason, r.offset) for r in effects.recorded] == [
        ("rejected", "forbidden", 3),
        ("already_published", None, 4),
    ]
