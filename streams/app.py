"""`store-publish stream`: the rates stream's wiring and its two handlers.

Per fetch of one partition's outcome records: parse, fold into the window's slots
(`streams.rates.fold`), write the changed slots. Per tick: merge the window, evaluate each rule
(`streams.alerts.evaluate`), act on and send each alert, then record the rule's new phase;
an alert that could not be acted on or sent leaves the phase as it was, so the next tick
tries again. `store_publish_auto_rollback` firing pauses publishing through the same switch
as `store-publish pause`; nothing here ever resumes it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime

import asyncpg
import structlog
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from ops.runtime.faults import classify, describe
from ops.runtime.http import serve_health_and_metrics
from ops.runtime.pause_switch import set_paused
from ops.runtime.waiting import until_started, within
from schemas.events import Alert, AlertAction, AlertState, PublishOutcome
from schemas.settings import Settings
from streams.alerts import Evaluation, Rule, RuleState, evaluate, rules_from_settings
from streams.faust_app import FaustRates, FetchedRecord
from streams.metrics import StreamMetrics
from streams.rates import Geometry, Observed, Slot, Snapshot, expired, fold, snapshot

log = structlog.get_logger("streams.app")

Clock = Callable[[], datetime]
AlertSink = Callable[[Alert], Awaitable[None]]


def utc_now() -> datetime:
    return datetime.now(UTC)


class DecodedSlots(Mapping[int, Slot]):
    """The slot table read as `Slot` values (decoded on access)."""

    def __init__(self, table: Mapping[str, bytes]) -> None:
        self._table = table

    def __getitem__(self, slot: int) -> Slot:
        return Slot.decode(self._table[str(slot)])

    def __iter__(self) -> Iterator[int]:
        return (int(key) for key in list(self._table))

    def __len__(self) -> int:
        return len(self._table)


def rollback_reason(alert: Alert) -> str:
    return (
        f"{alert.alert}: failed/all {alert.value:.1%} > {alert.threshold:.1%} "
        f"for {alert.for_seconds:g}s (window {alert.window_start.isoformat()} "
        f"to {alert.window_end.isoformat()})"
    )


class RatesEngine:
    """The stream's decisions applied to its state; faust calls `ingest` and `tick`."""

    def __init__(
        self,
        settings: Settings,
        slots: MutableMapping[str, bytes],
        rule_states: MutableMapping[str, bytes],
        metrics: StreamMetrics,
        act: AlertSink,
        send: AlertSink,
        clock: Clock = utc_now,
    ) -> None:
        self._geometry = Geometry(settings.alert_window_seconds)
        self._rules = rules_from_settings(settings)
        self._min_events = settings.alert_min_events
        self._slots = slots
        self._rule_states = rule_states
        self._metrics = metrics
        self._act = act
        self._send = send
        self._clock = clock
        self.last_window: Snapshot | None = None
        self.last_evaluated_at: datetime | None = None

    def ingest(self, partition: int, records: Sequence[FetchedRecord]) -> None:
        """Fold one partition's records of one fetch (offsets ascending)."""
        observed: list[Observed] = []
        for record in records:
            try:
                outcome = PublishOutcome.model_validate_json(record.value or b"")
            except ValidationError:
                self._metrics.invalid.inc()
                log.warning(
                    "Outcome record ignored: not a PublishOutcome",
                    partition=partition,
                    offset=record.offset,
                )
                continue
            observed.append(Observed(partition, record.offset, outcome))
        decoded = DecodedSlots(self._slots)
        changed = fold(decoded, observed, self._geometry, self._clock())
        folded = 0
        for slot, value in changed.items():
            before = decoded.get(slot, Slot()).counts.all
            folded += value.counts.all - before
            self._slots[str(slot)] = value.encode()
        self._metrics.outcomes.inc(folded)
        self._metrics.skipped.inc(max(0, len(observed) - folded))

    async def tick(self) -> list[Alert]:
        """Evaluate every rule once; returns the alerts sent."""
        now = self._clock()
        decoded = DecodedSlots(self._slots)
        for slot in expired(decoded, self._geometry, now):
            del self._slots[str(slot)]
        window = snapshot(decoded, self._geometry, now)
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


def rollback_action(pool: asyncpg.Pool) -> AlertSink:
    """Pause publishing when the rollback rule fires; never resume (a person does)."""

    async def act(alert: Alert) -> None:
        if alert.action is AlertAction.ROLLBACK and alert.state is AlertState.FIRING:
            await set_paused(
                pool,
                paused=True,
                reason=rollback_reason(alert),
                changed_by=f"alert:{alert.alert}",
            )

    return act


# faust's stop commits offsets and leaves the group; a broker that went away must not hold
# the process past this.
_STOP_TIMEOUT_S = 10.0


async def _broker_answers(settings: Settings) -> None:
    """Raises while no broker answers: faust's own start gives up at once on a refused
    bootstrap, where the stream, like the consumer, should wait."""
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())
    await admin.start()
    await admin.close()


async def _bounded(stop: Callable[[], Awaitable[None]], seconds: float) -> None:
    try:
        await within(stop(), seconds)
    except TimeoutError:
        log.warning("Rates stream did not stop in time", seconds=seconds)


async def run_stream(
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    started: asyncio.Event | None = None,
    registry: CollectorRegistry | None = None,
    clock: Clock = utc_now,
) -> None:
    """Run until `stop` is set; then stop faust (it commits its offsets) and return."""
    stop = stop if stop is not None else asyncio.Event()
    registry = registry if registry is not None else CollectorRegistry()
    metrics = StreamMetrics.create(registry)
    async with AsyncExitStack() as stack:
        # min_size=0: the stream alerts without a database; it is needed only to pause.
        pool = await asyncpg.create_pool(settings.dsn(), min_size=0, max_size=2)
        stack.push_async_callback(pool.close)
        rates = FaustRates(settings)

        async def send(alert: Alert) -> None:
            await rates.send_alert(alert.alert, alert.model_dump_json().encode("utf-8"))

        engine = RatesEngine(
            settings,
            rates.slots,
            rates.rule_states,
            metrics,
            act=rollback_action(pool),
            send=send,
            clock=clock,
        )
        rates.attach(engine.ingest, engine.tick, settings.alert_evaluate_interval_seconds)

        def health() -> tuple[bool, Mapping[str, object]]:
            window = engine.last_window
            return rates.recovered, {
                "recovered": rates.recovered,
                "window_outcomes": window.counts.all if window else 0,
                "last_evaluated_at": (
                    engine.last_evaluated_at.isoformat() if engine.last_evaluated_at else None
                ),
            }

        port = await stack.enter_async_context(
            serve_health_and_metrics(
                settings.stream_http_port, registry, health, host=settings.http_host
            )
        )
        # SIGTERM may come while faust still waits for the broker or its group: starting
        # is raced against it, and stopping is bounded, so the process always exits.
        if not await until_started(
            lambda: _broker_answers(settings), stop, waiting="Waiting for Kafka"
        ):
            log.info("Rates stream stopping before it started")
            return
        stopping = asyncio.create_task(stop.wait())
        starting = asyncio.create_task(rates.start())
        stack.push_async_callback(_bounded, rates.stop, _STOP_TIMEOUT_S)
        await asyncio.wait([stopping, starting], return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
            log.info("Rates stream stopping before it started")
            return
        starting.result()
        log.info("Rates stream started", appId=rates.app_id, httpPort=port)
        if started is not None:
            started.set()
        ended = asyncio.create_task(rates.until_stopped())
        await asyncio.wait([stopping, ended], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if ended.done():
            ended.result()
        ended.cancel()
        log.info("Rates stream stopping")
