"""A poll's batches decided side by side, then committed in one Kafka transaction; whatever
cannot be decided or committed is handed back (sought back to its first offset), to be read
and decided again, idempotently.

Deciding and committing are two steps so that the loop can overlap them: poll N+1 is
decided in PostgreSQL while poll N's Kafka transaction commits. N+1's transaction begins
only once N's has returned, so each partition's outcomes keep their order; if N's commit
fails, N and everything decided after it are handed back together."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import structlog
from aiokafka import ConsumerRecord
from aiokafka.errors import ProducerFenced
from aiokafka.structs import TopicPartition
from opentelemetry.trace import Tracer

from consumers.errors import BatchHandedBack, DecideSeparately, PartitionLost
from consumers.outcomes import InboundRecord, OutboundRecord
from consumers.repository import PartitionClaim
from consumers.results import Result
from consumers.tracing import PollTrace
from ops.runtime.faults import describe
from ops.runtime.tracing import has_trace
from ops.runtime.waiting import within
from schemas.settings import Settings

log = structlog.get_logger("consumers.commit")

Batches = Mapping[TopicPartition, list[ConsumerRecord[bytes, bytes]]]


class Seekable(Protocol):
    def assignment(self) -> Set[TopicPartition]: ...
    def seek(self, partition: TopicPartition, offset: int) -> None: ...


class Decider(Protocol):
    async def handle(
        self, records: Sequence[InboundRecord], claim: PartitionClaim
    ) -> list[Result]: ...
    async def handle_together(
        self, batches: Sequence[tuple[Sequence[InboundRecord], PartitionClaim]]
    ) -> list[list[Result]]: ...


class Writer(Protocol):
    async def commit(
        self, records: Sequence[OutboundRecord], offsets: Mapping[TopicPartition, int]
    ) -> None: ...


class Claims(Protocol):
    """Which partitions this process may write for, and the writer it commits with."""

    def claim_for(self, tp: TopicPartition, first_offset: int) -> PartitionClaim | None: ...
    def drop(self, tp: TopicPartition) -> None: ...
    def expect_next(self, tp: TopicPartition, offset: int) -> None: ...
    async def writer(self) -> Writer: ...
    async def replace_writer(self, wait_s: float = ...) -> None: ...


def inbound(
    record: ConsumerRecord[bytes, bytes], received_at: datetime, trace: PollTrace | None = None
) -> InboundRecord:
    """The record as the decision reads it; with the poll's `trace`, it names its request's
    trace for the log lines written about it (`consumers.results.request_ids`)."""
    return InboundRecord(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value,
        headers=tuple((name, bytes(value)) for name, value in record.headers),
        timestamp_ms=record.timestamp,
        received_at=received_at,
        trace_id=trace.trace_id(record) if trace is not None else None,
    )


def outbound(
    topic_outcomes: str, results: Sequence[Result], trace: PollTrace | None = None
) -> list[OutboundRecord]:
    """Each result's outcome, keyed by its store, and its dead letter when it has one; with
    a trace, the outcome carries the request span's context, and so does a dead letter whose
    request came without one (a dead letter keeps the request's own headers)."""
    records: list[OutboundRecord] = []
    for result in results:
        key = (
            str(result.outcome.store_id).encode() if result.outcome.store_id else result.record.key
        )
        traced = trace.headers_for(result.record) if trace is not None else ()
        value = result.outcome_json.encode("utf-8")
        records.append(OutboundRecord(topic_outcomes, key, value, traced))
        letter = result.dead_letter
        if letter is not None:
            if traced and not has_trace(letter.headers):
                letter = letter._replace(headers=(*letter.headers, *traced))
            records.append(letter)
    return records


@dataclass
class DecidedPoll:
    """A poll whose batches were decided (their database transactions committed) and whose
    outcomes are not committed to Kafka yet."""

    batches: Batches
    results: dict[TopicPartition, list[Result]]
    writer: Writer | None
    # The batches handed back while deciding, with why.
    errors: list[BaseException] = field(default_factory=list)
    # Its spans, when tracing is on.
    trace: PollTrace | None = None

    @property
    def offsets(self) -> dict[TopicPartition, int]:
        return {tp: self.batches[tp][-1].offset + 1 for tp in self.results}


@dataclass(frozen=True)
class Committed:
    """What became of a poll's Kafka transaction."""

    poll: DecidedPoll
    ok: bool
    errors: list[BaseException]


@dataclass(eq=False)
class Committer:
    settings: Settings
    consumer: Seekable
    claims: Claims
    decider: Decider
    tracer: Tracer | None = None

    async def decide(self, batches: Batches) -> DecidedPoll:
        """Each partition's batch transaction, side by side."""
        trace = PollTrace(self.tracer, batches) if self.tracer is not None else None
        poll = await self._decide(batches, trace)
        if trace is not None:
            trace.decided(poll.results, len(poll.errors))
            poll.trace = trace
            if not poll.results:
                trace.handed_back()
        return poll

    async def _decide(self, batches: Batches, trace: PollTrace | None) -> DecidedPoll:
        try:
            # Before the batch transactions, never after: see `PartitionClaims.writer`.
            writer = await self.claims.writer()
        except Exception as error:
            # Nothing was claimed or decided: back to where each batch began, as fetched.
            for tp, records in batches.items():
                self.consumer.seek(tp, records[0].offset)
            log.warning("Kafka writer not started, poll handed back", error=describe(error))
            return DecidedPoll(batches, {}, None, [BatchHandedBack(str(error))])
        decisions = await self._decide_together(batches, trace)
        if decisions is None:
            decisions = await asyncio.gather(
                *(self._decide_partition(tp, records, trace) for tp, records in batches.items()),
                return_exceptions=True,
            )
        errors = [d for d in decisions if isinstance(d, BaseException)]
        assignment = self.consumer.assignment()
        results = {
            tp: decided
            for tp, decided in zip(batches, decisions, strict=True)
            # Revoked meanwhile: its next owner redoes the batch from the database's records.
            if isinstance(decided, list) and tp in assignment
        }
        poll = DecidedPoll(batches, results, writer, errors)
        for tp, offset in poll.offsets.items():
            self.claims.expect_next(tp, offset)
        return poll

    async def commit(self, poll: DecidedPoll) -> Committed:
        """The poll's outcomes, dead letters and offsets in one Kafka transaction. On
        failure nothing is sought back here: the loop hands back this poll and any decided
        after it together (`hand_back`)."""
        if not poll.results or poll.writer is None:
            return Committed(poll, True, [])
        trace = poll.trace
        records = [
            record
            for results in poll.results.values()
            for record in outbound(self.settings.topic_outcomes, results, trace)
        ]
        if trace is None:
            return await self._commit(poll, records)
        trace.committing()
        committed = await self._commit(poll, records)
        trace.committed(poll.results, committed.ok)
        return committed

    async def _commit(self, poll: DecidedPoll, records: list[OutboundRecord]) -> Committed:
        assert poll.writer is not None
        try:
            # A transaction can hang when the broker goes away mid-commit: past this bound
            # the outcome is ambiguous, and a fresh producer settles it.
            await within(
                poll.writer.commit(records, poll.offsets),
                self.settings.kafka_commit_timeout_ms / 1000,
            )
        except asyncio.CancelledError:
            # Shutting down mid-commit: back where the poll began, for whoever reads next.
            self.hand_back(poll)
            raise
        except ProducerFenced:
            # A partition's next owner fenced this process's id; whatever is still ours is
            # redone idempotently, with a fresh producer, once its claim is proven again.
            log.warning(
                "Producer fenced, partition taken over",
                partitions=[tp.partition for tp in poll.results],
            )
            await self.claims.replace_writer()
            return Committed(poll, False, [])
        except Exception as error:
            log.warning(
                "Kafka transaction failed, batch handed back",
                partitions=[tp.partition for tp in poll.results],
                offsets=[poll.batches[tp][0].offset for tp in poll.results],
                error=describe(error),
            )
            # The next poll gets a fresh producer: its initialisation completes or aborts
            # whatever this one left open.
            await self.claims.replace_writer()
            return Committed(poll, False, [BatchHandedBack(str(error))])
        return Committed(poll, True, [])

    async def _decide_together(
        self, batches: Batches, trace: PollTrace | None
    ) -> list[list[Result] | BaseException | None] | None:
        """A small poll of several partitions in one database transaction: at low rates a
        poll's statements cost more than its records, and one transaction for six partitions
        makes a sixth of them. What each partition's batch became (its results; None when
        not this consumer's to decide; the error it was handed back with, given once), or
        None when the poll is to be decided a partition at a time."""
        limit = self.settings.consumer_poll_transaction_max_records
        if len(batches) < 2 or sum(len(records) for records in batches.values()) > limit:
            return None
        claims = {
            tp: claim
            for tp, records in batches.items()
            if (claim := self.claims.claim_for(tp, records[0].offset)) is not None
        }
        held = list(claims)
        if not held:
            return [None] * len(batches)
        now = datetime.now(UTC)
        try:
            decided = await self.decider.handle_together(
                [([inbound(r, now, trace) for r in batches[tp]], claims[tp]) for tp in held]
            )
        except DecideSeparately as why:
            log.info("Poll decided a partition at a time", why=str(why))
            return None
        except BaseException as error:
            for tp in held:
                self.consumer.seek(tp, batches[tp][0].offset)
            if not isinstance(error, Exception):
                raise
            # One error for the poll, so it is reacted to once.
            return [error if tp == held[0] else None for tp in batches]
        mine = dict(zip(held, decided, strict=True))
        return [mine.get(tp) for tp in batches]

    async def _decide_partition(
        self,
        tp: TopicPartition,
        records: list[ConsumerRecord[bytes, bytes]],
        trace: PollTrace | None,
    ) -> list[Result] | None:
        """The batch's results, decided and written in its database transaction; None when
        the batch is not this consumer's to decide."""
        claim = self.claims.claim_for(tp, records[0].offset)
        if claim is None:
            return None
        now = datetime.now(UTC)
        try:
            return await self.decider.handle([inbound(r, now, trace) for r in records], claim)
        except PartitionLost:
            log.warning("Partition claimed by another consumer", partition=tp.partition)
            self.claims.drop(tp)
            return None
        except BaseException:
            self.consumer.seek(tp, records[0].offset)
            raise

    def hand_back(self, *polls: DecidedPoll) -> None:
        """Seek each decided partition back to the first record of these polls that it has,
        so they are read and decided again (idempotently: their database effects are
        recorded). Partitions skipped or failed while deciding were sought back already."""
        first: dict[TopicPartition, int] = {}
        for poll in polls:
            if poll.trace is not None:
                poll.trace.handed_back()
            for tp in poll.results:
                offset = poll.batches[tp][0].offset
                first[tp] = min(first.get(tp, offset), offset)
        for tp, offset in first.items():
            self.consumer.seek(tp, offset)
            self.claims.expect_next(tp, offset)
