"""`store-publish stream`: the rates stream's wiring, one worker of its group.

Every worker folds the outcome partitions it holds into partials (`streams.folding`); the one
that holds the partials topic also merges them and evaluates the alert rules
(`streams.evaluating`). Run one worker or several with the same settings: the rates and the
alerts are the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack

import asyncpg
import structlog
from opentelemetry.trace import Tracer
from prometheus_client import CollectorRegistry

from ops.runtime.database import database_pool
from ops.runtime.faults import describe, is_worth_retrying
from ops.runtime.http import serve_health_and_metrics
from ops.runtime.pause_switch import set_paused
from ops.runtime.topics import create_topics
from ops.runtime.waiting import sleep_or_stop, until_started, within
from schemas.events import Alert
from schemas.settings import Settings
from streams.alerts import rollback_pause
from streams.evaluating import AlertSink, Evaluator
from streams.faust_app import FaustRates
from streams.faust_app.fetching import FetchHandler
from streams.folding import Folder
from streams.metrics import StreamMetrics
from streams.partials import Partials
from streams.rates import Clock, Geometry, utc_now
from streams.tracing import traced_fetches

log = structlog.get_logger("streams.app")

PUBLISH_PER_INTERVAL = 5


def rollback_action(pool: asyncpg.Pool) -> AlertSink:
    """Sets the pause switch when the rollback rule says so (`streams.alerts.rollback_pause`)."""

    async def act(alert: Alert) -> None:
        if (reason := rollback_pause(alert)) is not None:
            await set_paused(pool, paused=True, reason=reason, changed_by=f"alert:{alert.alert}")

    return act


# faust's stop commits offsets and leaves the group; a broker that went away must not hold
# the process past this.
_STOP_TIMEOUT_S = 10.0


async def _prepare(settings: Settings, partials_topic: str) -> None:
    """Raises while no broker answers: faust's own start gives up at once on a refused
    bootstrap, where the stream, like the consumer, should wait. Then creates the partials
    topic: one partition, so one worker reads every partial, in the order they were sent;
    kept as long as the outcomes are, so a partial never expires before it is read."""
    await create_topics(
        settings,
        [partials_topic],
        partitions=1,
        configs={
            partials_topic: {
                "retention.ms": str(settings.topic_outcomes_retention_ms),
                "min.insync.replicas": str(settings.min_insync_replicas),
                "cleanup.policy": "delete",
            }
        },
    )


async def _bounded(stop: Callable[[], Awaitable[None]], seconds: float) -> None:
    try:
        await within(stop(), seconds)
    except TimeoutError:
        log.warning("Rates stream did not stop in time", seconds=seconds)


class _Worker:
    """One faust app and the two phases wired to it."""

    def __init__(
        self,
        settings: Settings,
        metrics: StreamMetrics,
        act: AlertSink,
        clock: Clock,
        tracer: Tracer | None = None,
    ) -> None:
        rates = FaustRates(settings)

        async def send(alert: Alert) -> None:
            await rates.send_alert(alert.alert, alert.model_dump_json().encode("utf-8"))

        # One window for both phases: the slots the workers fold into are the ones merged.
        window = Geometry(settings.alert_window_seconds)
        folder = Folder(window, Partials(rates.partials), metrics, rates.publish_partial, clock)
        evaluator = Evaluator(
            settings,
            window,
            Partials(rates.window),
            rates.rule_phases,
            metrics,
            act=act,
            send=send,
            clock=clock,
        )

        async def tick() -> None:
            folder.tick(rates.held_partitions(), rates.generation)
            evaluating = rates.evaluates()
            metrics.evaluating.set(int(evaluating))
            if evaluating:
                await evaluator.tick()

        async def publish() -> None:
            folder.publish(rates.held_partitions())

        interval = settings.alert_evaluate_interval_seconds
        ingest: FetchHandler = folder.ingest
        if tracer is not None:
            ingest = traced_fetches(tracer, settings.topic_outcomes, ingest)
        rates.attach(
            ingest,
            evaluator.merge,
            # Partials go out PUBLISH_PER_INTERVAL times per evaluation: an outcome is in an
            # evaluated window at most 1 + 1/PUBLISH_PER_INTERVAL intervals after it is read.
            {"publish": (interval / PUBLISH_PER_INTERVAL, publish), "tick": (interval, tick)},
        )
        self.rates, self.evaluator = rates, evaluator

    def health(self) -> tuple[bool, Mapping[str, object]]:
        rates, window = self.rates, self.evaluator.last_window
        evaluated_at = self.evaluator.last_evaluated_at
        return rates.recovered, {
            "recovered": rates.recovered,
            "evaluating": rates.evaluates() if rates.recovered else False,
            "partitions": sorted(rates.held_partitions()) if rates.recovered else [],
            "window_outcomes": window.counts.all if window else 0,
            "last_evaluated_at": evaluated_at.isoformat() if evaluated_at else None,
        }


async def run_stream(
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    started: asyncio.Event | None = None,
    registry: CollectorRegistry | None = None,
    clock: Clock = utc_now,
    tracer: Tracer | None = None,
) -> None:
    """Run until `stop` is set; then stop faust (it commits its offsets) and return. With a
    `tracer`, each fetch of outcomes folded is a span (streams.tracing)."""
    stop = stop if stop is not None else asyncio.Event()
    registry = registry if registry is not None else CollectorRegistry()
    metrics = StreamMetrics.create(registry)
    async with AsyncExitStack() as stack:
        # min_size=0: the stream alerts without a database; it is needed only to pause.
        pool = await stack.enter_async_context(database_pool(settings, "stream", max_size=2))
        worker = _Worker(settings, metrics, rollback_action(pool), clock, tracer)
        port = await stack.enter_async_context(
            serve_health_and_metrics(
                settings.stream_http_port,
                registry,
                lambda: worker.health(),
                host=settings.http_host,
            )
        )
        # SIGTERM may come while faust still waits for the broker or its group: starting
        # is raced against it, and stopping is bounded, so the process always exits.
        if not await until_started(
            lambda: _prepare(settings, worker.rates.partials_topic),
            stop,
            waiting="Waiting for Kafka",
        ):
            log.info("Rates stream stopping before it started")
            return
        stack.push_async_callback(lambda: _bounded(worker.rates.stop, _STOP_TIMEOUT_S))
        stopping = asyncio.create_task(stop.wait())
        while True:
            starting = asyncio.create_task(worker.rates.start())
            await asyncio.wait([stopping, starting], return_when=asyncio.FIRST_COMPLETED)
            if not starting.done():
                starting.cancel()
                await asyncio.gather(starting, return_exceptions=True)
                log.info("Rates stream stopping before it started")
                return
            error = starting.exception()
            if error is None:
                break
            if not is_worth_retrying(error):
                stopping.cancel()
                raise error
            # A broker that went away while faust started (its topics, its group): faust
            # cannot start the same app twice, so a new one starts, from the changelogs.
            log.warning("Rates stream could not start, starting again", error=describe(error))
            await _bounded(worker.rates.stop, _STOP_TIMEOUT_S)
            await sleep_or_stop(stop, 1.0)
            worker = _Worker(settings, metrics, rollback_action(pool), clock, tracer)
        rates = worker.rates
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
