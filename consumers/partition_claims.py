"""Which input partitions this consumer may write for, and the writer it commits with: the
database claim and the next offset to process per partition, from assignment to revocation,
and one transactional writer for the process."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Sequence
from contextlib import suppress

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from consumers import repository as repo
from consumers.kafka_io import TransactionalWriter, fence, new_transactional_id
from ops.runtime.faults import describe
from ops.runtime.waiting import sleep_or_stop, within
from schemas.settings import Settings

log = structlog.get_logger("consumers.partition_claims")


class PartitionClaims:
    def __init__(
        self,
        settings: Settings,
        consumer: AIOKafkaConsumer,
        pool: asyncpg.Pool,
        stop: asyncio.Event,
    ) -> None:
        self._settings = settings
        # Set by SIGTERM: a claim waiting for the database gives up, so a rebalance, and
        # with it the consumer's shutdown, is never held up by an unreachable database.
        self._stop = stop
        self._consumer = consumer
        self._pool = pool
        self._writer: TransactionalWriter | None = None
        self._writer_lock = asyncio.Lock()
        # The next offset to decide per partition: read at assignment, then as decided.
        self._next: dict[TopicPartition, int] = {}
        # Partitions whose assignment has been taken up: only their batches are processed.
        self._taken: set[TopicPartition] = set()
        self._claims: dict[TopicPartition, repo.PartitionClaim] = {}
        self._owner = f"{socket.gethostname()}:{os.getpid()}"
        self.transactional_id = new_transactional_id(settings, self._owner)

    @property
    def owner(self) -> str:
        """This process, as the claims and the state reports name it: host:pid."""
        return self._owner

    @property
    def partitions(self) -> list[int]:
        return sorted(tp.partition for tp in self._taken)

    async def take(self, assigned: Sequence[TopicPartition]) -> None:
        """Take up newly assigned partitions, in the order that keeps zombies out."""
        # First the database claim: from here on a zombie's batch transaction fails.
        previous: set[str] = set()
        for tp in assigned:
            claimed = await self._claim(tp)
            if claimed is None:
                return  # stopping: the partitions stay untaken, nothing is processed
            self._claims[tp] = claimed.claim
            if claimed.previous_transactional_id is not None:
                previous.add(claimed.previous_transactional_id)
        # Then the previous owners' transactional ids: initialising each one waits until its
        # transaction, with its offset commit, is complete or aborted, and fences it ...
        # (our own id has nothing open: a rebalance waits for the poll in flight).
        for transactional_id in sorted(previous - {self.transactional_id}):
            await asyncio.wait_for(fence(self._settings, transactional_id), timeout=120)
            log.info("Previous owner fenced", transactionalId=transactional_id)
        for tp in assigned:
            # ... so the committed offset read now is stable. aiokafka has no KIP-447
            # require_stable fetch: one read before that point could be stale, and the
            # batch it led to would be sent a second time.
            committed = await self._consumer.committed(tp)
            if committed is None:
                self._next.pop(tp, None)
            else:
                self._next[tp] = committed
                self._consumer.seek(tp, committed)
        self._taken.update(assigned)

    async def give_up(self, revoked: Sequence[TopicPartition]) -> None:
        for tp in revoked:
            self.drop(tp)

    def drop(self, tp: TopicPartition) -> None:
        """Stop writing for a partition, until the group assigns it again."""
        self._taken.discard(tp)
        self._next.pop(tp, None)
        self._claims.pop(tp, None)

    async def writer(self) -> TransactionalWriter:
        """The process's writer, started when missing.

        Taken before a poll's batch transactions, never between them and the commit: a
        writer initialised after a batch proved its claim could outlive a fence laid by the
        partition's next owner in between, and commit output that owner produces too.
        """
        async with self._writer_lock:
            if self._writer is None:
                writer = TransactionalWriter(self._settings, self.transactional_id)
                await asyncio.wait_for(writer.start(), timeout=120)
                self._writer = writer
            return self._writer

    async def replace_writer(self, wait_s: float = 30) -> None:
        """Drop the writer: the next poll starts a fresh producer with the same id, whose
        initialisation completes or aborts whatever this one left open."""
        async with self._writer_lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            with suppress(Exception):
                await within(writer.stop(), wait_s)

    def claim_for(self, tp: TopicPartition, first_offset: int) -> repo.PartitionClaim | None:
        """The claim to process a batch starting at `first_offset` with, or None when the
        batch must be skipped: fetched before the assignment was taken up, or from a stale
        position (the partition is then sought back to where it should be)."""
        expected = self._next.get(tp)
        claim = self._claims.get(tp)
        if claim is None or tp not in self._taken:
            return None
        if expected is not None and first_offset != expected:
            self._consumer.seek(tp, expected)
            return None
        return claim

    def expect_next(self, tp: TopicPartition, offset: int) -> None:
        """The next batch of `tp` must start at `offset`: the offset after a batch decided
        (its commit may still be in flight), or where a batch handed back was sought to."""
        if tp in self._taken:
            self._next[tp] = offset

    def next_offset(self, tp: TopicPartition) -> int | None:
        return self._next.get(tp)

    async def _claim(self, tp: TopicPartition) -> repo.TakenClaim | None:
        """Claim the partition in the database; a rebalance cannot finish without it, so a
        database that is unreachable or at fault is waited for here. None once stopping."""
        delay = 0.1
        while not self._stop.is_set():
            try:
                async with self._pool.acquire() as conn:
                    return await repo.claim_partition(
                        conn,
                        self._settings.consumer_group,
                        tp.topic,
                        tp.partition,
                        self._owner,
                        self.transactional_id,
                    )
            except Exception as error:
                # Unreachable, at fault, or the previous owner's batch still holds the row
                # past the lock timeout (until PostgreSQL ends a frozen session): wait.
                log.warning(
                    "Waiting for the database to claim a partition",
                    partition=tp.partition,
                    error=describe(error),
                )
            await sleep_or_stop(self._stop, delay)
            delay = min(delay * 2, self._settings.db_outage_max_backoff_ms / 1000)
        return None

    async def close(self) -> None:
        for tp in list(self._taken):
            self.drop(tp)
        # Shutting down: a transaction left open is aborted by whoever initialises the id
        # next, so the writer is not waited for long.
        await self.replace_writer(wait_s=5)
