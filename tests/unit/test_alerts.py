"""The alert rules' state machine: fire after the duration, resolve, one event per episode."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas.events import Alert, AlertAction, AlertState
from schemas.settings import Settings
from streams.alerts import (
    AUTO_ROLLBACK,
    HIGH_ERROR_RATE,
    HIGH_GATING_BLOCK_RATE,
    HIGH_RETRY_RATE,
    SLOW_RESPONSE,
    Phase,
    Rule,
    RuleState,
    evaluate,
    rollback_pause,
    rules_from_settings,
)
from streams.rates import Counts, Snapshot

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
MIN_EVENTS = 20


def settings(**overrides: Any) -> Settings:
    return Settings(_env_file=None, **overrides)


RULES = {rule.name: rule for rule in rules_from_settings(settings())}


def window(
    *,
    all: int = 100,
    failed: int = 0,
    gated: int = 0,
    retried: int = 0,
    p95_ms: float = 50.0,
    at: datetime = T0,
) -> Snapshot:
    return Snapshot(
        window_start=at - timedelta(minutes=5),
        window_end=at,
        counts=Counts(all=all, failed=failed, gated=gated, retried=retried),
        p95_latency_ms=p95_ms,
    )


def run(rule: Rule, windows: list[tuple[float, Snapshot]]) -> list[tuple[float, AlertState]]:
    """Evaluate at each (seconds after T0, window); the alerts as (seconds, state)."""
    state = RuleState()
    sent = []
    for seconds, snap in windows:
        evaluation = evaluate(rule, state, snap, MIN_EVENTS, T0 + timedelta(seconds=seconds))
        state = evaluation.state
        if evaluation.alert is not None:
            sent.append((seconds, evaluation.alert.state))
    return sent


def every(
    step: float, until: float, snap: Snapshot, start: float = 0.0
) -> list[tuple[float, Snapshot]]:
    count = round((until - start) / step)
    return [(start + i * step, snap) for i in range(count + 1)]


BAD = {
    HIGH_ERROR_RATE: window(failed=6),
    SLOW_RESPONSE: window(p95_ms=12_000.0),
    HIGH_RETRY_RATE: window(retried=21),
    HIGH_GATING_BLOCK_RATE: window(gated=51),
    AUTO_ROLLBACK: window(failed=11),
}
CONTRACT_FOR = {
    HIGH_ERROR_RATE: 300.0,
    SLOW_RESPONSE: 300.0,
    HIGH_RETRY_RATE: 600.0,
    HIGH_GATING_BLOCK_RATE: 600.0,
    AUTO_ROLLBACK: 300.0,
}


def test_the_rules_are_the_contracts_five() -> None:
    assert {name: rule.for_seconds for name, rule in RULES.items()} == CONTRACT_FOR
    assert RULES[HIGH_ERROR_RATE].action is AlertAction.PAGE_ONCALL
    assert RULES[AUTO_ROLLBACK].action is AlertAction.ROLLBACK
    assert RULES[SLOW_RESPONSE].threshold == 10_000.0


@pytest.mark.parametrize("name", sorted(CONTRACT_FOR))
def test_each_rule_fires_after_its_duration_and_resolves_when_it_stops(name: str) -> None:
    rule, duration = RULES[name], CONTRACT_FOR[name]
    timeline = [
        *every(5.0, duration + 60, BAD[name]),
        *every(5.0, duration + 120, window(), start=duration + 65),
    ]
    assert run(rule, timeline) == [
        (duration, AlertState.FIRING),
        (duration + 65, AlertState.RESOLVED),
    ]


def test_the_condition_is_strictly_above_the_threshold() -> None:
    assert run(RULES[HIGH_ERROR_RATE], every(5.0, 600, window(failed=5))) == []


def test_no_alert_on_an_empty_window() -> None:
    empty = window(all=0)
    for rule in RULES.values():
        assert run(rule, every(5.0, 1200, empty)) == []


def test_no_alert_on_a_window_with_fewer_outcomes_than_the_minimum() -> None:
    tiny = window(all=MIN_EVENTS - 1, failed=MIN_EVENTS - 1, gated=MIN_EVENTS - 1, p95_ms=1e6)
    for rule in RULES.values():
        assert run(rule, every(5.0, 1200, tiny)) == []


def test_one_firing_event_per_episode_however_long_it_lasts() -> None:
    sent = run(RULES[HIGH_ERROR_RATE], every(5.0, 3600, window(failed=50)))
    assert sent == [(300.0, AlertState.FIRING)]


def test_a_condition_that_flickers_faster_than_the_duration_never_fires() -> None:
    bad, good = window(failed=50), window()
    timeline = [(t, bad if (t // 60) % 2 == 0 else good) for t in range(0, 3600, 5)]
    assert run(RULES[HIGH_ERROR_RATE], [(float(t), s) for t, s in timeline]) == []


def test_a_new_episode_needs_a_full_duration_after_resolving() -> None:
    bad, good = window(failed=50), window()
    timeline = [*every(5.0, 300, bad), (305.0, good), *every(5.0, 900, bad, start=310)]
    sent = run(RULES[HIGH_ERROR_RATE], timeline)
    assert sent == [
        (300.0, AlertState.FIRING),
        (305.0, AlertState.RESOLVED),
        (610.0, AlertState.FIRING),
    ]


def test_a_quiet_window_resolves_a_firing_alert() -> None:
    timeline = [*every(5.0, 300, window(failed=50)), (305.0, window(all=0))]
    assert run(RULES[HIGH_ERROR_RATE], timeline)[-1] == (305.0, AlertState.RESOLVED)


def test_the_alert_carries_value_threshold_duration_and_window() -> None:
    rule = RULES[AUTO_ROLLBACK]
    pending = evaluate(rule, RuleState(), window(failed=12), MIN_EVENTS, T0)
    assert pending.alert is None
    assert pending.state.phase is Phase.PENDING
    at = T0 + timedelta(seconds=300)
    snap = window(failed=12, at=at)
    fired = evaluate(rule, pending.state, snap, MIN_EVENTS, at)
    assert fired.alert is not None
    assert fired.alert.model_dump() == {
        "alert": AUTO_ROLLBACK,
        "state": AlertState.FIRING,
        "action": AlertAction.ROLLBACK,
        "value": pytest.approx(0.12),
        "threshold": 0.10,
        "for_seconds": 300.0,
        "window_start": snap.window_start,
        "window_end": at,
        "evaluated_at": at,
    }


def test_a_zero_duration_fires_at_the_first_evaluation() -> None:
    rule = next(
        r
        for r in rules_from_settings(settings(alert_error_rate_for_seconds=0))
        if r.name == HIGH_ERROR_RATE
    )
    assert run(rule, [(0.0, window(failed=50))]) == [(0.0, AlertState.FIRING)]


def test_thresholds_and_durations_come_from_settings() -> None:
    rules = {
        r.name: r
        for r in rules_from_settings(
            settings(alert_retry_rate_threshold=0.5, alert_retry_rate_for_seconds=2.0)
        )
    }
    assert (rules[HIGH_RETRY_RATE].threshold, rules[HIGH_RETRY_RATE].for_seconds) == (0.5, 2.0)


def test_a_rule_state_survives_encoding() -> None:
    state = RuleState(Phase.PENDING, T0)
    assert RuleState.decode(state.encode()) == state
    assert RuleState.decode(RuleState().encode()) == RuleState()


def _alert(name: str, state: AlertState, action: AlertAction) -> Alert:
    return Alert(
        alert=name,
        state=state,
        action=action,
        value=0.125,
        threshold=0.10,
        for_seconds=300.0,
        window_start=T0,
        window_end=T0 + timedelta(seconds=300),
        evaluated_at=T0 + timedelta(seconds=300),
    )


def test_a_firing_rollback_alert_pauses_publishing_with_its_figures_as_the_reason() -> None:
    reason = rollback_pause(_alert(AUTO_ROLLBACK, AlertState.FIRING, AlertAction.ROLLBACK))
    assert reason == (
        f"{AUTO_ROLLBACK}: failed/all 12.5% > 10.0% for 300s "
        f"(window {T0.isoformat()} to {(T0 + timedelta(seconds=300)).isoformat()})"
    )


@pytest.mark.parametrize(
    ("name", "state", "action"),
    [
        (AUTO_ROLLBACK, AlertState.RESOLVED, AlertAction.ROLLBACK),
        (HIGH_ERROR_RATE, AlertState.FIRING, AlertAction.PAGE_ONCALL),
        (HIGH_ERROR_RATE, AlertState.RESOLVED, AlertAction.PAGE_ONCALL),
    ],
)
def test_nothing_but_a_firing_rollback_pauses_and_nothing_resumes(
    name: str, state: AlertState, action: AlertAction
) -> None:
    assert rollback_pause(_alert(name, state, action)) is None
