"""The stream's second phase, in the one worker that holds the partials topic: the window
merged from the latest partial of every partition, and the alert rules evaluated over it.

Per fetch of partials: each replaces the one stored for its (partition, slot) when it is at
least as far along (`Slot.supersedes`), never adds to it. Per tick: merge the live partials
into the window, evaluate each rule (`streams.alerts.evaluate`), act on and send each alert,
then record the rule's new phase; an alert that could not be acted on or sent leaves the phase
as it was, so the next tick tries again. `store_publish_auto_rollback` firing pauses
publishing through the same switch as `store-publish pause`; nothing here ever resumes it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from datetime import datetime

import structlog

from ops.runtime.faults import classify, describe
from schemas.events import Alert
from schemas.settings import Settings
from streams.alerts import Evaluation, Rule, RuleState, evaluate, rules_from_settings
from streams.faust_app import FetchedRecord
from streams.metrics import StreamMetrics
from streams.partials import Partials
from streams.rates import Clock, Geometry, Slot, Snapshot, parse_partial_key, snapshot

log = structlog.get_logger("streams.evaluating")

AlertSink = Callable[[Alert], Awaitable[None]]


class Evaluator:
    """Merges partials (`merge`) and evaluates the rules over their window (`tick`)."""

    def __init__(
        self,
        settings: Settings,
        window: Geometry,
        partials: Partials,
        rule_states: MutableMapping[str, bytes],
        metrics: StreamMetrics,
        act: AlertSink,
        send: AlertSink,
        clock: Clock,
    ) -> None:
        self._geometry = window
        self._rules = rules_from_settings(settings)
        self._min_events = settings.alert_min_events
        self._partials = partials
        self._rule_states = rule_states
        self._metrics = metrics
        self._act = act
        self._send = send
        self._clock = clock
        self.last_window: Snapshot | None = None
        self.last_evaluated_at: datetime | None = None

    def merge(self, _partition: int, records: Sequence[FetchedRecord]) -> None:
        """Keep the latest partial of each (partition, slot) in one fetch of the partials topic."""
        first_live = self._geometry.live(self._clock()).start
        for record in records:
            key = record.key.decode("utf-8") if record.key is not None else ""
            try:
                partition, slot = parse_partial_key(key)
                incoming = Slot.decode(record.value or b"")
            except ValueError:
                self._metrics.invalid_partials.inc()
                log.warning("Partial ignored: not a partial", key=key, offset=record.offset)
                continue
            if slot < first_live:
                continue  # left the window already: it can no longer change an alert
            stored = self._partials.get(key)
            if stored is None or incoming.supersedes(stored, partition):
                self._partials.put(key, record.value or b"", incoming)

    async def tick(self) -> list[Alert]:
        """Evaluate every rule once over the merged window; returns the alerts sent."""
        now = self._clock()
        self._partials.expire(self._geometry.live(now).start)
        window = snapshot(self._partials.by_slot(), self._geometry, now)
        evaluations = [self._evaluate(rule, window, now) for rule in self._rules]
        sent: list[Alert] = []
        for evaluation in evaluations:
            if evaluation.alert is not None and not await self._deliver(evaluation.alert):
                continue
            self._rule_states[evaluation.rule.name] = evaluation.state.encode()
            if evaluation.alert is not None:
                sent.append(evaluation.alert)
        self._metrics.observe(window, evaluations)
        self.last_window, self.last_evaluated_at = window, now
        return sent

    def _evaluate(self, rule: Rule, window: Snapshot, now: datetime) -> Evaluation:
        stored = self._rule_states.get(rule.name)
        state = RuleState.decode(stored) if stored is not None else RuleState()
        return evaluate(rule, state, window, self._min_events, now)

    async def _deliver(self, alert: Alert) -> bool:
        try:
            await self._act(alert)
            await self._send(alert)
        except Exception as error:
            # Whoever's fault it is (ops.runtime.faults), the phase stays as it was, so the
            # next tick acts and sends again: an alert is never dropped.
            log.error(
                "Alert not delivered, next tick retries",
                alert=alert.alert,
                fault=classify(error).value,
                error=describe(error),
            )
            return False
        log.warning(
            "Alert " + alert.state.value,
            alert=alert.alert,
            action=alert.action.value,
            value=alert.value,
            threshold=alert.threshold,
        )
        return True
