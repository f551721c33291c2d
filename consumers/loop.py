"""The publish consumer's loop, given its collaborators.

Per poll: read the pause switch when due, wait for the commit cadence unless the last poll
was full, take a batch per partition with `getmany`, decide them in PostgreSQL while the
previous poll's Kafka transaction commits, then commit them once it has returned
(`Committer`), observe. At most two polls are in flight: one being decided, one committing.
A paused switch, an unreachable database or a database fault hands the batch back and holds
the partitions (`Holding`): requests wait in Kafka, nothing is lost, failed or
dead-lettered for it. SIGTERM ends the loop: the poll in flight is finished, or handed back
after a short grace.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

import structlog
from aiokafka import ConsumerRecord
from aiokafka.structs import TopicPartition

from consumers.commit import Batches, Committed, Committer, DecidedPoll, Seekable
from consumers.errors import BatchHandedBack, DatabaseFault, DatabaseUnavailable, PublishingPaused
from consumers.holding import Holding, Pausable
from consumers.metrics import ConsumerMetrics
from consumers.results import log_committed
from ops.runtime.faults import describe, is_unreachable
from ops.runtime.waiting import sleep_or_stop, within
from schemas.settings import Settings

log = structlog.get_logger("consumers.loop")

# After SIGTERM, how long the poll in flight may go on before it is handed back: a Kafka
# transaction hanging on a broker that went away must not hold the shutdown for its whole
# timeout. What is handed back is redone, idempotently, by the partition's next owner.
SHUTDOWN_GRACE_S = 3.0


class Source(Pausable, Seekable, Protocol):
    """The Kafka consumer as the loop uses it."""

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]: ...
    def last_stable_offset(self, tp: TopicPartition) -> int | None: ...


class Positions(Protocol):
    @property
    def partitions(self) -> list[int]: ...
    def next_offset(self, tp: TopicPartition) -> int | None: ...


@dataclass(eq=False)
class ConsumerLoop:
    settings: Settings
    consumer: Source
    committer: Committer
    holding: Holding
    positions: Positions
    metrics: ConsumerMetrics
    processed: int = field(default=0, init=False)
    # Held while a poll is decided and the previous one settled: a rebalance waits for it,
    # and for the commit in flight, before giving partitions up.
    _in_flight: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    _pending: asyncio.Task[Committed] | None = field(default=None, init=False)
    _next_lag_update: float = field(default=0.0, init=False)
    # The commit cadence: when the last poll with records was taken, and whether it was
    # full (a backlog: the next one is taken at once).
    _last_poll_at: float = field(default=float("-inf"), init=False)
    _last_poll_full: bool = field(default=False, init=False)

    @asynccontextmanager
    async def between_polls(self) -> AsyncIterator[None]:
        """For rebalances: no poll is in flight inside this block."""
        async with self._in_flight:
            committed = await self._settle()
            if committed is not None and not committed.ok:
                self.committer.hand_back(committed.poll)
            yield

    def health(self) -> tuple[bool, dict[str, object]]:
        ok, details = self.holding.report()
        return ok, {
            **details,
            "partitions": self.positions.partitions,
            "processed": self.processed,
        }

    async def run(self, stop: asyncio.Event) -> None:
        poll_s = self.settings.pause_poll_interval_ms / 1000
        try:
            while not stop.is_set():
                try:
                    await self.holding.read_switch_when_due()
                except Exception as error:
                    # The switch cannot be read: publishing must not go on unchecked.
                    await self._hold(stop, error)
                    continue
                if self.holding.paused:
                    await self._finish_or_hand_back(self._settle_and_react(stop), stop)
                    await sleep_or_stop(stop, poll_s)
                    continue
                if await self._wait_for_cadence(stop):
                    continue
                batches = await self.consumer.getmany(
                    timeout_ms=200, max_records=self.settings.consumer_max_batch
                )
                if batches:
                    self._last_poll_at = time.monotonic()
                    taken = sum(len(records) for records in batches.values())
                    self._last_poll_full = taken >= self.settings.consumer_max_batch
                    await self._finish_or_hand_back(self._pipeline(batches, stop), stop)
                elif self._pending is not None:
                    await self._finish_or_hand_back(self._settle_and_react(stop), stop)
                self._update_lag_when_due()
        finally:
            if self._pending is not None:
                try:
                    await within(self._settle(), SHUTDOWN_GRACE_S)
                except TimeoutError:
                    log.warning("Stopping: the commit in flight is handed back")

    async def _wait_for_cadence(self, stop: asyncio.Event) -> bool:
        """Wait until `CONSUMER_COMMIT_INTERVAL_MS` after the last poll with records, unless
        that poll was full; True when stop was set meanwhile. The broker holds the reader's
        fetch as long (`consumers.kafka_io`), so the next poll takes every record of the
        interval in one transaction."""
        if self._last_poll_full:
            return False
        due = self._last_poll_at + self.settings.consumer_commit_interval_ms / 1000
        wait = due - time.monotonic()
        if wait <= 0:
            return False
        await sleep_or_stop(stop, wait)
        return stop.is_set()

    async def _finish_or_hand_back(
        self, work: Coroutine[object, object, None], stop: asyncio.Event
    ) -> None:
        task = asyncio.create_task(work)
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if task.done():
            await task
            return
        try:
            await within(task, SHUTDOWN_GRACE_S)
        except TimeoutError:
            # Its batches are redone by the partitions' next owner, from the committed offsets.
            log.warning("Stopping: the poll in flight is handed back")

    async def _pipeline(self, batches: Batches, stop: asyncio.Event) -> None:
        """Decide this poll while the previous one commits; then commit this one, unless the
        previous failed, in which case both go back."""
        for records in batches.values():
            self.metrics.batch_size.observe(len(records))
        steps = self.metrics.poll_steps
        async with self._in_flight:
            began = time.monotonic()
            poll = await self.committer.decide(batches)
            decided = time.monotonic()
            steps.labels("decide").observe(decided - began)
            previous = await self._settle()
            steps.labels("wait").observe(time.monotonic() - decided)
            errors = [*(previous.errors if previous else []), *poll.errors]
            if previous is not None and not previous.ok:
                self.committer.hand_back(previous.poll, poll)
            elif poll.results:
                self._pending = asyncio.create_task(self._timed_commit(poll))
        await self._react(errors, stop)

    async def _timed_commit(self, poll: DecidedPoll) -> Committed:
        began = time.monotonic()
        committed = await self.committer.commit(poll)
        self.metrics.poll_steps.labels("commit").observe(time.monotonic() - began)
        return committed

    async def _settle(self) -> Committed | None:
        """Wait for the commit in flight, if any, and observe what it committed."""
        task, self._pending = self._pending, None
        if task is None:
            return None
        committed = await task
        if committed.ok:
            for results in committed.poll.results.values():
                self.metrics.observe(results)
                log_committed(results)
                self.processed += len(results)
            if committed.poll.results and not committed.poll.errors:
                self.holding.went_through()
        return committed

    async def _settle_and_react(self, stop: asyncio.Event) -> None:
        async with self._in_flight:
            committed = await self._settle()
            if committed is None:
                return
            if not committed.ok:
                self.committer.hand_back(committed.poll)
        await self._react(committed.errors, stop)

    async def _react(self, errors: Sequence[BaseException], stop: asyncio.Event) -> None:
        """What the batches handed back ask of the loop: the most serious first."""
        for error in errors:
            if not isinstance(error, Exception):
                raise error  # cancellation and the like are not ours to swallow
        if any(isinstance(error, PublishingPaused) for error in errors):
            self.holding.set_paused(True, "publishing paused")
        unavailable = [e for e in errors if isinstance(e, DatabaseUnavailable)]
        faults = [e for e in errors if isinstance(e, DatabaseFault)]
        unforeseen = [
            e
            for e in errors
            if not isinstance(
                e, PublishingPaused | DatabaseUnavailable | DatabaseFault | BatchHandedBack
            )
        ]
        if unavailable:
            await self.holding.wait_for_database(stop, unavailable[0])
        elif faults or unforeseen:
            for error in unforeseen:
                log.error(
                    "Batch handed back after an unexpected error",
                    error=describe(error),
                    exc_info=error,
                )
            fault = faults[0] if faults else DatabaseFault(unforeseen[0])
            await self.holding.wait_out_fault(stop, fault)
        elif any(isinstance(error, BatchHandedBack) for error in errors):
            # The batches went back to Kafka; give the broker a moment before trying again.
            await sleep_or_stop(stop, 1.0)

    async def _hold(self, stop: asyncio.Event, error: BaseException) -> None:
        if is_unreachable(error):
            await self.holding.wait_for_database(stop, error)
        else:
            await self.holding.wait_out_fault(stop, DatabaseFault(error))

    def _update_lag_when_due(self) -> None:
        now = time.monotonic()
        if now < self._next_lag_update:
            return
        self._next_lag_update = now + 1.0
        for tp in self.consumer.assignment():
            end = self.consumer.last_stable_offset(tp)
            done = self.positions.next_offset(tp)
            if end is not None and done is not None:
                self.metrics.lag.labels(str(tp.partition)).set(max(end - done, 0))
