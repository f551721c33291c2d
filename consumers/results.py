"""What each request of a batch produced: its outcome and, when the contract wants one, its
dead letter; and, once its outcome is committed, the log line the runbook reads (`Gating
check blocked`, `Request rejected`, `Failed to publish store`). Pure but for that logging."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import NamedTuple

import structlog

from consumers.decision import Decision, Verdict
from consumers.idempotency import SameAs
from consumers.outcomes import (
    InboundRecord,
    OutboundRecord,
    dead_letter,
    decided_outcome,
    is_dead_lettered,
    refused_outcome,
    verdict_outcome,
)
from consumers.screening import Refusal
from schemas.events import PublishOutcome, PublishRequested, Reason, Status

log = structlog.get_logger("consumers.results")


class Result(NamedTuple):
    """What one request produced: its outcome, and a dead letter when the contract wants one."""

    record: InboundRecord
    outcome: PublishOutcome
    outcome_json: str
    dead_letter: OutboundRecord | None
    repeated: bool = False
    # Why it failed or was refused, as its dead letter says; empty when decided.
    error: str = ""


class Authenticated(NamedTuple):
    """A request that passed screening: parsed, valid, and signed when signing is on."""

    record: InboundRecord
    request: PublishRequested


class Results:
    """Builds a batch's results; one per consumer, for its dead-letter topic."""

    def __init__(self, dlq_topic: str) -> None:
        self._dlq_topic = dlq_topic

    def refused(self, record: InboundRecord, refusal: Refusal) -> Result:
        now = datetime.now(UTC)
        outcome = refused_outcome(record, refusal, now)
        return self._result(record, outcome, refusal.error)

    def _result(self, record: InboundRecord, outcome: PublishOutcome, error: str) -> Result:
        letter = None
        if is_dead_lettered(outcome.status) and outcome.reason is not None:
            letter = dead_letter(
                record,
                dlq_topic=self._dlq_topic,
                reason=outcome.reason,
                error=error,
                attempts=outcome.attempts,
                correlation_id=outcome.correlation_id,
                now=outcome.processed_at,
            )
        return Result(record, outcome, outcome.model_dump_json(), letter, error=error)

    def failed(self, item: Authenticated, reason: Reason, attempts: int, error: str) -> Result:
        now = datetime.now(UTC)
        outcome = decided_outcome(
            item.record,
            item.request,
            status=Status.FAILED,
            reason=reason,
            attempts=attempts,
            now=now,
        )
        return self._result(item.record, outcome, error)

    def of_decisions(
        self,
        items: list[Authenticated],
        decisions: list[Decision],
        attempts: int,
        now: datetime,
    ) -> list[Result]:
        results: list[Result] = []
        for item, decision in zip(items, decisions, strict=True):
            if isinstance(decision, Verdict):
                results.append(self._verdict(item, decision, attempts, now))
                continue
            # The same outcome again; its dead letter too, since the first one may have gone
            # down with an aborted transaction, and a replayed refusal must stay visible.
            if isinstance(decision, SameAs):
                outcome_json = results[decision.first].outcome_json
            else:
                outcome_json = decision.outcome_json
            outcome = PublishOutcome.model_validate_json(outcome_json)
            # The record keeps JSON in jsonb, which reorders keys: the model gives back the
            # bytes that were sent the first time.
            outcome_json = outcome.model_dump_json()
            error = f"{outcome.reason.value} (repeated outcome)" if outcome.reason else ""
            again = self._result(item.record, outcome, error)
            results.append(Result(item.record, outcome, outcome_json, again.dead_letter, True))
        return results

    def _verdict(
        self, item: Authenticated, verdict: Verdict, attempts: int, now: datetime
    ) -> Result:
        outcome = verdict_outcome(item.record, item.request, verdict, attempts, now)
        error = f"{verdict.reason.value}" if verdict.reason else ""
        return self._result(item.record, outcome, error)


def request_ids(record: InboundRecord, correlation_id: str) -> dict[str, object]:
    """The ids a log line about one request carries: its `correlationId` and, with tracing
    on, the `traceId` of its request span. The consumer's lines are written outside that
    span (a poll's requests are decided together), so the record names its trace."""
    ids: dict[str, object] = {"correlationId": correlation_id}
    if record.trace_id is not None:
        ids["traceId"] = record.trace_id
    return ids


def log_committed(results: Sequence[Result]) -> None:
    """The runbook's line of each outcome committed to Kafka, once per outcome record, with
    the request's ids (`request_ids`).

    Written here, not where the outcome is decided: a batch handed back, a transaction
    rolled back or a poll decided again after its Kafka commit failed would otherwise log
    the same request twice, and the runbook counts these lines."""
    for result in results:
        outcome = result.outcome
        line = _LINES.get(outcome.status)
        if line is None:
            continue
        level, message = line
        fields = request_ids(result.record, outcome.correlation_id)
        fields["userId"] = _text(outcome.user_id)
        fields["storeId"] = _text(outcome.store_id)
        if outcome.status is Status.GATED:
            fields["missingStep"] = outcome.missing_steps[0] if outcome.missing_steps else None
            fields["missingSteps"] = outcome.missing_steps
        else:
            fields["reason"] = outcome.reason.value if outcome.reason else None
            fields["error"] = result.error
            fields["attempts"] = outcome.attempts
            fields["partition"] = result.record.partition
            fields["offset"] = result.record.offset
        log.log(level, message, **fields)


# The outcomes with a line of their own, at the level the runbook reads them.
_LINES = {
    Status.GATED: (logging.INFO, "Gating check blocked"),
    Status.REJECTED: (logging.WARNING, "Request rejected"),
    Status.FAILED: (logging.ERROR, "Failed to publish store"),
}


def _text(value: object | None) -> str | None:
    return None if value is None else str(value)
