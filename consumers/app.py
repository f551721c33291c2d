"""`store-publish consume`: the publish consumer's loop, lifecycle and rebalances.

Per poll: read the pause switch when due, take a batch per partition with `getmany`, hand
each to the batch handler, commit its outcomes, dead letters and offset in one Kafka
transaction, then observe. A paused switch or an unreachable database hands the batch back
(seek) and pauses the partitions: requests wait in Kafka, nothing is lost or dead-lettered.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import AsyncExitStack, suppress
from datetime import UTC, datetime

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import ProducerFenced
from aiokafka.structs import TopicPartition
from prometheus_client import CollectorRegistry

from consumers.batch import BatchHandler, Result
from consumers.errors import (
    BatchHandedBack,
    DatabaseUnavailable,
    PartitionLost,
    PublishingPaused,
    is_database_unavailable,
)
from consumers.metrics import ConsumerMetrics
from consumers.outcomes import InboundRecord, OutboundRecord
from consumers.ownership import Ownership
from ops.runtime.http import serve_health_and_metrics
from ops.runtime.pause_switch import read_control
from schemas.events import Status
from schemas.settings import Settings

log = structlog.get_logger("consumers.app")


def inbound(record: ConsumerRecord[bytes, bytes], received_at: datetime) -> InboundRecord:
    return InboundRecord(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value,
        headers=tuple((name, bytes(value)) for name, value in record.headers),
        timestamp_ms=record.timestamp,
        received_at=received_at,
    )


class PublishConsumer:
    """Owns the loop; the clients it uses are started and stopped by `run_consumer`."""

    def __init__(
        self,
        settings: Settings,
        consumer: AIOKafkaConsumer,
        pool: asyncpg.Pool,
        metrics: ConsumerMetrics,
    ) -> None:
        self._settings = settings
        self._consumer = consumer
        self._pool = pool
        self._metrics = metrics
        self._handler = BatchHandler(settings, pool)
        self._ownership = Ownership(settings, consumer, pool)
        # Held while a batch is in flight: a rebalance waits for it before giving partitions up.
        self._in_flight = asyncio.Lock()
        self.paused = False
        self.pause_reason: str | None = None
        self.database_down_since: datetime | None = None
        self.processed = 0
        self._next_control_read = 0.0
        self._next_lag_update = 0.0
        metrics.database_available.set(1)
        metrics.paused.set(0)

    # Rebalances -----------------------------------------------------------------------------

    async def on_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        async with self._in_flight:
            await self._ownership.give_up(revoked)
        log.info("Partitions revoked", partitions=[tp.partition for tp in revoked])

    async def on_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        async with self._in_flight:
            await self._ownership.take(assigned)
        if self.paused or self.database_down_since is not None:
            self._consumer.pause(*assigned)
        log.info("Partitions assigned", partitions=[tp.partition for tp in assigned])

    async def close(self) -> None:
        await self._ownership.close()

    # Health ---------------------------------------------------------------------------------

    def health(self) -> tuple[bool, dict[str, object]]:
        down = self.database_down_since
        details: dict[str, object] = {
            "database": "unavailable" if down else "available",
            "paused": self.paused,
            "pause_reason": self.pause_reason,
            "partitions": self._ownership.partitions,
            "processed": self.processed,
        }
        if down is not None:
            details["database_down_since"] = down.isoformat()
            details["waiting"] = "for PostgreSQL; partitions paused, requests wait in Kafka"
        return down is None, details

    # The loop -------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        poll_s = self._settings.pause_poll_interval_ms / 1000
        while not stop.is_set():
            try:
                await self._read_control_when_due()
            except Exception as error:
                if not is_database_unavailable(error):
                    raise
                await self._wait_for_database(stop, error)
                continue
            if self.paused:
                await _sleep_or_stop(stop, poll_s)
                continue
            batches = await self._consumer.getmany(
                timeout_ms=200, max_records=self._settings.consumer_max_batch
            )
            if batches:
                await self._process(batches, stop)
            self._update_lag_when_due()

    async def _process(
        self, batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]], stop: asyncio.Event
    ) -> None:
        async with self._in_flight:
            errors = await self._decide_and_commit(batches)
        if any(isinstance(error, PublishingPaused) for error in errors):
            self._set_paused(True, "publishing paused")
        unavailable = [error for error in errors if isinstance(error, DatabaseUnavailable)]
        if unavailable:
            await self._wait_for_database(stop, unavailable[0])
        others = [e for e in errors if not isinstance(e, PublishingPaused | DatabaseUnavailable)]
        for error in others:
            if not isinstance(error, Exception):
                raise error  # cancellation and the like are not ours to swallow
            if isinstance(error, BatchHandedBack):
                continue  # already logged where it happened
            log.error(
                "Batch handed back after an unexpected error",
                error=f"{type(error).__name__}: {error}",
                exc_info=error,
            )
        if others:
            # The batches went back to Kafka; give the broker a moment before trying again.
            await _sleep_or_stop(stop, 1.0)

    async def _decide_and_commit(
        self, batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> list[BaseException]:
        """Each partition's batch transaction, side by side, then one Kafka transaction for
        every batch decided. Returns the errors of the batches handed back."""
        try:
            # Before the batch transactions, never after: see `Ownership.writer`.
            writer = await self._ownership.writer()
        except Exception as error:
            self._hand_back(batches)
            log.warning(
                "Kafka writer not started, poll handed back",
                error=f"{type(error).__name__}: {error}",
            )
            return [BatchHandedBack(str(error))]
        decisions = await asyncio.gather(
            *(self._decide_partition(tp, records) for tp, records in batches.items()),
            return_exceptions=True,
        )
        errors = [d for d in decisions if isinstance(d, BaseException)]
        assignment = self._consumer.assignment()
        decided = {
            tp: results
            for tp, results in zip(batches, decisions, strict=True)
            # Revoked meanwhile: its next owner redoes the batch from the database's records.
            if isinstance(results, list) and tp in assignment
        }
        if not decided:
            return errors
        offsets = {tp: batches[tp][-1].offset + 1 for tp in decided}
        outbound = [
            record
            for tp, results in decided.items()
            for record in _outbound(self._settings, results)
        ]
        try:
            # A transaction can hang when the broker goes away mid-commit: past this bound
            # the outcome is ambiguous, and a fresh producer settles it.
            await asyncio.wait_for(
                writer.commit(outbound, offsets),
                timeout=self._settings.kafka_commit_timeout_ms / 1000,
            )
        except ProducerFenced:
            # A partition's next owner fenced this process's id; whatever is still ours is
            # redone idempotently, with a fresh producer, once its claim is proven again.
            log.warning(
                "Producer fenced, partition taken over",
                partitions=[tp.partition for tp in decided],
            )
            self._hand_back({tp: batches[tp] for tp in decided})
            await self._ownership.replace_writer()
            return errors
        except Exception as error:
            log.warning(
                "Kafka transaction failed, batch handed back",
                partitions=[tp.partition for tp in decided],
                offsets=[batches[tp][0].offset for tp in decided],
                error=f"{type(error).__name__}: {error}",
            )
            self._hand_back({tp: batches[tp] for tp in decided})
            # The next poll gets a fresh producer: its initialisation completes or aborts
            # whatever this one left open.
            await self._ownership.replace_writer()
            return [*errors, BatchHandedBack(str(error))]
        for tp, results in decided.items():
            self._ownership.committed(tp, offsets[tp])
            self._observe(results)
        return errors

    async def _decide_partition(
        self, tp: TopicPartition, records: list[ConsumerRecord[bytes, bytes]]
    ) -> list[Result] | None:
        """The batch's results, decided and written in its database transaction; None when
        the batch is not this consumer's to decide."""
        claim = self._ownership.claim_for(tp, records[0].offset)
        if claim is None:
            return None
        now = datetime.now(UTC)
        self._metrics.batch_size.observe(len(records))
        try:
            return await self._handler.handle([inbound(r, now) for r in records], claim)
        except PartitionLost:
            log.warning("Partition claimed by another consumer", partition=tp.partition)
            self._ownership.drop(tp)
            return None
        except BaseException:
            self._consumer.seek(tp, records[0].offset)
            raise

    def _hand_back(self, batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        for tp, records in batches.items():
            self._consumer.seek(tp, records[0].offset)

    def _observe(self, results: list[Result]) -> None:
        """Metrics for a committed batch: counters once per label set, histograms per value."""
        metrics = self._metrics
        outcomes: Counter[tuple[str, str]] = Counter()
        dead_letters: Counter[str] = Counter()
        gating_blocks: Counter[str] = Counter()
        attempts = retries = retried = 0
        for result in results:
            outcome = result.outcome
            outcomes[outcome.status.value, outcome.reason.value if outcome.reason else ""] += 1
            if result.repeated:
                continue
            attempts += outcome.attempts
            if outcome.attempts > 1:
                retries += outcome.attempts - 1
                retried += 1
            if result.dead_letter is not None and outcome.reason is not None:
                dead_letters[outcome.reason.value] += 1
            if outcome.status is Status.GATED:
                gating_blocks.update(outcome.missing_steps)
            metrics.processing.observe(outcome.processing_ms / 1000)
            metrics.end_to_end.observe(max(outcome.latency_ms, 0) / 1000)
        for (status, reason), count in outcomes.items():
            metrics.outcomes.labels(status, reason).inc(count)
        for reason, count in dead_letters.items():
            metrics.dead_letters.labels(reason).inc(count)
        for step, count in gating_blocks.items():
            metrics.gating_blocks.labels(step).inc(count)
        metrics.attempts.inc(attempts)
        metrics.retries.inc(retries)
        metrics.retried_outcomes.inc(retried)
        self.processed += len(results)

    # Pause switch and database outages ----------------------------------------------------

    async def _read_control_when_due(self) -> None:
        now = time.monotonic()
        if now < self._next_control_read:
            return
        self._next_control_read = now + self._settings.pause_poll_interval_ms / 1000
        state = await read_control(self._pool)
        if state.paused != self.paused:
            self._set_paused(state.paused, state.reason)

    def _set_paused(self, paused: bool, reason: str | None) -> None:
        self.paused = paused
        self.pause_reason = reason if paused else None
        self._metrics.paused.set(1 if paused else 0)
        assignment = list(self._consumer.assignment())
        if paused:
            self._consumer.pause(*assignment)
            log.warning("Publishing paused", reason=reason)
        else:
            self._consumer.resume(*assignment)
            log.info("Publishing resumed")
        # Read the switch again soon: a batch refused by the switch re-reads its reason.
        self._next_control_read = 0.0

    async def _wait_for_database(self, stop: asyncio.Event, error: BaseException) -> None:
        self.database_down_since = datetime.now(UTC)
        self._metrics.database_available.set(0)
        self._consumer.pause(*self._consumer.assignment())
        log.error(
            "Database unavailable, requests wait in Kafka",
            error=f"{type(error).__name__}: {error}",
        )
        delay = 0.1
        max_delay = self._settings.db_outage_max_backoff_ms / 1000
        while not stop.is_set():
            try:
                conn = await asyncpg.connect(self._settings.dsn(), timeout=2)
                try:
                    await conn.fetchval("SELECT 1")
                finally:
                    await conn.close()
                break
            except Exception as probe_error:
                if not is_database_unavailable(probe_error):
                    raise
            await _sleep_or_stop(stop, delay)
            delay = min(delay * 2, max_delay)
        # Connections from before the outage are dead; the pool opens new ones.
        await self._pool.expire_connections()
        log.info(
            "Database available again",
            downSeconds=(datetime.now(UTC) - self.database_down_since).total_seconds(),
        )
        self.database_down_since = None
        self._metrics.database_available.set(1)
        self._next_control_read = 0.0
        if not self.paused:
            self._consumer.resume(*self._consumer.assignment())

    def _update_lag_when_due(self) -> None:
        now = time.monotonic()
        if now < self._next_lag_update:
            return
        self._next_lag_update = now + 1.0
        for tp in self._consumer.assignment():
            end = self._consumer.last_stable_offset(tp)
            done = self._ownership.next_offset(tp)
            if end is not None and done is not None:
                self._metrics.lag.labels(str(tp.partition)).set(max(end - done, 0))


def _outbound(settings: Settings, results: list[Result]) -> list[OutboundRecord]:
    records: list[OutboundRecord] = []
    for result in results:
        key = (
            str(result.outcome.store_id).encode() if result.outcome.store_id else result.record.key
        )
        records.append(
            OutboundRecord(settings.topic_outcomes, key, result.outcome_json.encode("utf-8"))
        )
        if result.dead_letter is not None:
            records.append(result.dead_letter)
    return records


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.target: PublishConsumer | None = None

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        if self.target is not None:
            await self.target.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        if self.target is not None:
            await self.target.on_assigned(assigned)


async def run_consumer(
    settings: Settings,
    *,
    registry: CollectorRegistry | None = None,
    stop: asyncio.Event | None = None,
    started: asyncio.Event | None = None,
) -> None:
    """Consume until `stop` is set; then finish the batch in flight, stop the clients, return."""
    registry = registry if registry is not None else CollectorRegistry()
    stop = stop if stop is not None else asyncio.Event()
    metrics = ConsumerMetrics.create(registry)
    listener = _Rebalance()
    async with AsyncExitStack() as stack:
        # min_size=0: the consumer starts, and waits, even while PostgreSQL is down.
        pool = await stack.enter_async_context(
            asyncpg.create_pool(
                settings.dsn(),
                min_size=0,
                max_size=settings.db_pool_max_size,
                timeout=5,
                # Session settings rather than SET LOCAL in each transaction: one round trip
                # fewer per batch.
                server_settings={
                    "lock_timeout": str(settings.db_lock_timeout_ms),
                    "statement_timeout": str(settings.db_statement_timeout_ms),
                    "idle_in_transaction_session_timeout": str(
                        settings.db_idle_in_transaction_timeout_ms
                    ),
                    "application_name": "store-publish-consumer",
                },
            )
        )
        consumer = AIOKafkaConsumer(
            **settings.kafka_client_options(),
            group_id=settings.consumer_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        service = PublishConsumer(settings, consumer, pool, metrics)
        listener.target = service
        consumer.subscribe([settings.topic_requests], listener=listener)
        await consumer.start()
        stack.push_async_callback(consumer.stop)
        stack.push_async_callback(service.close)
        port = await stack.enter_async_context(
            serve_health_and_metrics(
                settings.consumer_http_port, registry, service.health, host=settings.http_host
            )
        )
        log.info(
            "Consumer started",
            group=settings.consumer_group,
            topic=settings.topic_requests,
            httpPort=port,
        )
        if started is not None:
            started.set()
        await service.run(stop)
        log.info("Consumer stopping", processed=service.processed)
