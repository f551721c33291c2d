"""`store-publish consume`: the one place that builds the consumer's collaborators, starts
and stops them, and hands them to the loop."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import AsyncExitStack

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.structs import TopicPartition
from opentelemetry.trace import Tracer
from prometheus_client import CollectorRegistry

from consumers.access import check_kafka_access, refusal
from consumers.batch import BatchHandler
from consumers.commit import Committer
from consumers.decide_in_db import PostgresDecisions
from consumers.holding import Holding, ProbeDatabase
from consumers.kafka_io import requests_reader
from consumers.ledger import ledger_maintenance
from consumers.loop import ConsumerLoop
from consumers.metrics import ConsumerMetrics
from consumers.partition_claims import PartitionClaims
from consumers.state_report import StateReporter
from ops.runtime.database import database_pool
from ops.runtime.http import serve_health_and_metrics
from ops.runtime.pause_switch import read_control
from ops.runtime.waiting import until_started, within
from schemas.settings import Settings

log = structlog.get_logger("consumers.app")

# Stopping the Kafka clients leaves the group and ends the producer; a broker that went
# away must not hold the process past this.
_CLIENT_STOP_TIMEOUT_S = 3.0


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Partitions change hands only between polls; new ones start held back when the
    consumer is holding back."""

    def __init__(
        self, consumer: AIOKafkaConsumer, claims: PartitionClaims, holding: Holding
    ) -> None:
        self._consumer = consumer
        self._claims = claims
        self._holding = holding
        self.loop: ConsumerLoop | None = None

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        assert self.loop is not None
        async with self.loop.between_polls():
            await self._claims.give_up(revoked)
        log.info("Partitions revoked", partitions=[tp.partition for tp in revoked])

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        assert self.loop is not None
        async with self.loop.between_polls():
            await self._claims.take(assigned)
        if self._holding.holds_back:
            self._consumer.pause(*assigned)
        log.info("Partitions assigned", partitions=[tp.partition for tp in assigned])


def _probe(settings: Settings, pool: asyncpg.Pool) -> ProbeDatabase:
    async def probe() -> None:
        """Raises while PostgreSQL does not answer; once it does, the pool's connections
        from before the outage are dead and new ones are opened."""
        conn = await asyncpg.connect(settings.dsn(), timeout=2)
        try:
            await conn.fetchval("SELECT 1")
        finally:
            await conn.close()
        await pool.expire_connections()

    return probe


async def _stop_clients(consumer: AIOKafkaConsumer, claims: PartitionClaims) -> None:
    """Leave the group and drop the writer side by side, within one bound."""
    try:
        await within(asyncio.gather(claims.close(), consumer.stop()), _CLIENT_STOP_TIMEOUT_S)
    except TimeoutError:
        log.warning("Kafka clients did not stop in time; the group and the transaction time out")


async def run_consumer(
    settings: Settings,
    *,
    registry: CollectorRegistry | None = None,
    stop: asyncio.Event | None = None,
    started: asyncio.Event | None = None,
    tracer: Tracer | None = None,
) -> None:
    """Consume until `stop` is set; then finish the poll in flight (or hand it back), stop
    the clients, return. With a `tracer`, each poll's requests are traced (consumers.tracing)."""
    registry = registry if registry is not None else CollectorRegistry()
    stop = stop if stop is not None else asyncio.Event()
    metrics = ConsumerMetrics.create(registry)
    async with AsyncExitStack() as stack:
        pool = await stack.enter_async_context(database_pool(settings, "consumer"))
        await stack.enter_async_context(
            ledger_maintenance(
                pool,
                settings,
                metrics.ledger_partitions_created,
                metrics.ledger_partitions_dropped,
                metrics.ledger_maintenance_runs,
            )
        )
        consumer = requests_reader(settings)
        claims = PartitionClaims(settings, consumer, pool, stop)
        reporter = StateReporter(pool, claims.owner, settings.consumer_group)
        await stack.enter_async_context(reporter.running())
        holding = Holding(
            settings,
            consumer,
            read_switch=lambda: read_control(pool),
            probe=_probe(settings, pool),
            reconnect=pool.expire_connections,
            metrics=metrics,
            report=reporter.report,
        )
        committer = Committer(
            settings,
            consumer,
            claims,
            BatchHandler(settings, PostgresDecisions(settings, pool)),
            tracer,
        )
        loop = ConsumerLoop(settings, consumer, committer, holding, claims, metrics)
        listener = _Rebalance(consumer, claims, holding)
        listener.loop = loop
        consumer.subscribe([settings.topic_requests], listener=listener)
        port = await stack.enter_async_context(
            serve_health_and_metrics(
                settings.consumer_http_port, registry, loop.health, host=settings.http_host
            )
        )

        async def start_reader() -> None:
            await check_kafka_access(settings)
            try:
                await consumer.start()
            except Exception as error:
                refused = refusal(settings, error)
                if refused is None:
                    raise
                await consumer.stop()
                raise refused from None

        if not await until_started(start_reader, stop, waiting="Waiting for Kafka"):
            log.info("Consumer stopping before it started")
            return
        stack.push_async_callback(_stop_clients, consumer, claims)
        log.info(
            "Consumer started",
            group=settings.consumer_group,
            topic=settings.topic_requests,
            httpPort=port,
        )
        if started is not None:
            started.set()
        await loop.run(stop)
        log.info("Consumer stopping", processed=loop.processed)
