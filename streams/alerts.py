"""The contract's alert rules and the state machine that turns window snapshots into alerts.

Per rule, three phases: `inactive`, `pending` (the condition holds, not yet for `for_seconds`)
and `firing`. At each evaluation:

- inactive, condition holds: pending since now (firing at once when `for_seconds` is 0);
- pending, condition has held at every evaluation for `for_seconds`: firing, one `firing` alert;
- pending, condition false: back to inactive, the clock forgets (no alert);
- firing, condition holds: nothing (one firing alert per episode);
- firing, condition false: inactive, one `resolved` alert.

Against flapping: the window itself smooths (a rate over `alert_window_seconds`, not per
event); a pending rule that sees the condition false once starts over, so a condition
oscillating around its threshold faster than `for_seconds` never fires; and after a
resolution a new episode needs a full `for_seconds` of the condition again, so a rule emits
at most one firing/resolved pair per `for_seconds`. A window holding fewer than
`alert_min_events` outcomes never satisfies a condition (too few to mean anything), so a
quiet period resolves a firing alert rather than freezing it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from schemas.events import Alert, AlertAction, AlertState
from schemas.settings import Settings
from streams.rates import Snapshot

HIGH_ERROR_RATE = "store_publish_high_error_rate"
SLOW_RESPONSE = "store_publish_slow_response"
HIGH_RETRY_RATE = "store_publish_high_retry_rate"
HIGH_GATING_BLOCK_RATE = "store_publish_high_gating_block_rate"
AUTO_ROLLBACK = "store_publish_auto_rollback"


class Measure(StrEnum):
    """What a rule compares with its threshold (rates are 0..1, latency in milliseconds)."""

    ERROR_RATE = "error_rate"
    P95_LATENCY_MS = "p95_latency_ms"
    RETRY_RATE = "retry_rate"
    GATING_BLOCK_RATE = "gating_block_rate"

    def of(self, window: Snapshot) -> float:
        match self:
            case Measure.ERROR_RATE:
                return window.error_rate
            case Measure.P95_LATENCY_MS:
                return window.p95_latency_ms
            case Measure.RETRY_RATE:
                return window.retry_rate
            case Measure.GATING_BLOCK_RATE:
                return window.gating_block_rate


@dataclass(frozen=True)
class Rule:
    name: str
    measure: Measure
    threshold: float
    for_seconds: float
    action: AlertAction


def rules_from_settings(settings: Settings) -> tuple[Rule, ...]:
    """The contract's five rules, with thresholds and durations from configuration."""
    return (
        Rule(
            HIGH_ERROR_RATE,
            Measure.ERROR_RATE,
            settings.alert_error_rate_threshold,
            settings.alert_error_rate_for_seconds,
            AlertAction.PAGE_ONCALL,
        ),
        Rule(
            SLOW_RESPONSE,
            Measure.P95_LATENCY_MS,
            settings.alert_slow_p95_ms,
            settings.alert_slow_for_seconds,
            AlertAction.NOTIFY_TEAM,
        ),
        Rule(
            HIGH_RETRY_RATE,
            Measure.RETRY_RATE,
            settings.alert_retry_rate_threshold,
            settings.alert_retry_rate_for_seconds,
            AlertAction.NOTIFY_TEAM,
        ),
        Rule(
            HIGH_GATING_BLOCK_RATE,
            Measure.GATING_BLOCK_RATE,
            settings.alert_gating_rate_threshold,
            settings.alert_gating_rate_for_seconds,
            AlertAction.NOTIFY_TEAM,
        ),
        Rule(
            AUTO_ROLLBACK,
            Measure.ERROR_RATE,
            settings.alert_rollback_error_rate_threshold,
            settings.alert_rollback_for_seconds,
            AlertAction.ROLLBACK,
        ),
    )


class Phase(StrEnum):
    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"


@dataclass(frozen=True)
class RuleState:
    """Where a rule stands; `since` is when the condition started holding (pending/firing)."""

    phase: Phase = Phase.INACTIVE
    since: datetime | None = None

    def encode(self) -> bytes:
        since = self.since.isoformat() if self.since is not None else None
        return json.dumps({"phase": self.phase.value, "since": since}).encode("utf-8")

    @classmethod
    def decode(cls, data: bytes) -> RuleState:
        body = json.loads(data)
        since = datetime.fromisoformat(body["since"]) if body["since"] is not None else None
        return cls(Phase(body["phase"]), since)


@dataclass(frozen=True)
class Evaluation:
    rule: Rule
    value: float
    holds: bool
    state: RuleState
    alert: Alert | None


def rollback_pause(alert: Alert) -> str | None:
    """The automatic rollback: the pause switch's reason when `alert` must pause publishing,
    else None. Only a firing rollback alert pauses; nothing here ever resumes (a person does,
    having looked)."""
    if alert.action is not AlertAction.ROLLBACK or alert.state is not AlertState.FIRING:
        return None
    return (
        f"{alert.alert}: failed/all {alert.value:.1%} > {alert.threshold:.1%} "
        f"for {alert.for_seconds:g}s (window {alert.window_start.isoformat()} "
        f"to {alert.window_end.isoformat()})"
    )


def holds(rule: Rule, window: Snapshot, min_events: int) -> bool:
    return window.counts.all >= min_events and rule.measure.of(window) > rule.threshold


def evaluate(
    rule: Rule, state: RuleState, window: Snapshot, min_events: int, now: datetime
) -> Evaluation:
    """The rule's next state at `now` and the alert to send, if its episode changed."""
    value = rule.measure.of(window)
    condition = holds(rule, window, min_events)
    state_change: AlertState | None = None
    if not condition:
        next_state = RuleState()
        if state.phase is Phase.FIRING:
            state_change = AlertState.RESOLVED
    elif state.phase is Phase.FIRING:
        next_state = state
    else:
        since = state.since if state.phase is Phase.PENDING and state.since is not None else now
        if (now - since).total_seconds() >= rule.for_seconds:
            next_state, state_change = RuleState(Phase.FIRING, since), AlertState.FIRING
        else:
            next_state = RuleState(Phase.PENDING, since)
    alert = None
    if state_change is not None:
        alert = Alert(
            alert=rule.name,
            state=state_change,
            action=rule.action,
            value=value,
            threshold=rule.threshold,
            for_seconds=rule.for_seconds,
            window_start=window.window_start,
            window_end=window.window_end,
            evaluated_at=now,
        )
    return Evaluation(rule, value, condition, next_state, alert)
