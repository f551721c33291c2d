"""Outcomes followed for the requests this gateway is waiting on.

Every gateway instance reads the whole outcomes topic (every partition assigned, no group,
nothing committed, read_committed so an aborted consumer transaction never answers a
caller) from its end at start, and hands each outcome to whoever waits for its request id.
Recent outcomes and the requests answered 202 are remembered, bounded, for the polls that
follow; older ones are found in the ledger (see lookup.py).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from typing import TypeVar

import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition
from pydantic import ValidationError

from ops.runtime.waiting import within
from schemas.events import PublishOutcome
from schemas.settings import Settings

log = structlog.get_logger("ops.gateway.waiting")

K = TypeVar("K")
V = TypeVar("V")

_KEEP_DECIDED = 20_000
_KEEP_PENDING = 100_000
_STOP_TIMEOUT_S = 3.0


def _remember(table: OrderedDict[K, V], key: K, value: V, keep: int) -> None:
    table[key] = value
    table.move_to_end(key)
    while len(table) > keep:
        table.popitem(last=False)


class MissingTopic(RuntimeError):
    """The outcomes topic does not exist: `store-publish migrate` has not run."""


class OutcomeFollower:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._consumer: AIOKafkaConsumer | None = None
        self._waiters: dict[uuid.UUID, set[asyncio.Future[PublishOutcome]]] = {}
        self._decided: OrderedDict[uuid.UUID, PublishOutcome] = OrderedDict()
        self._pending: OrderedDict[uuid.UUID, uuid.UUID] = OrderedDict()
        self.followed = 0

    async def _partitions(self) -> list[int]:
        # Every topic described: naming one in a metadata request may auto-create it.
        admin = AIOKafkaAdminClient(**self._settings.kafka_client_options())
        await admin.start()
        try:
            described = await admin.describe_topics()
        finally:
            await admin.close()
        topic = self._settings.topic_outcomes
        for found in described:
            if found["topic"] == topic and found["error_code"] == 0:
                return sorted(int(partition["partition"]) for partition in found["partitions"])
        raise MissingTopic(f"topic {topic} does not exist: run `store-publish migrate`")

    async def start(self) -> None:
        """Assign every partition of the outcomes topic at its end. Once this returns, no
        outcome of a request sent afterwards can be missed."""
        topic = self._settings.topic_outcomes
        assigned = [TopicPartition(topic, p) for p in await self._partitions()]
        consumer = AIOKafkaConsumer(
            **self._settings.kafka_client_options(),
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="latest",
        )
        await consumer.start()
        try:
            consumer.assign(assigned)
            await consumer.seek_to_end(*assigned)
            for tp in assigned:
                await consumer.position(tp)  # the end, fixed now rather than at first fetch
        except BaseException:
            await consumer.stop()
            raise
        self._consumer = consumer
        log.info("Following outcomes", topic=topic, partitions=len(assigned))

    async def stop(self) -> None:
        if self._consumer is not None:
            try:
                await within(self._consumer.stop(), _STOP_TIMEOUT_S)
            except TimeoutError:
                log.warning("Outcome reader did not stop in time")
            self._consumer = None

    async def run(self, stop: asyncio.Event) -> None:
        """Hand each outcome to its waiters until `stop` is set."""
        assert self._consumer is not None, "not started"
        while not stop.is_set():
            batches = await self._consumer.getmany(timeout_ms=200, max_records=5000)
            for records in batches.values():
                for record in records:
                    self._take(record.value or b"")

    def _take(self, value: bytes) -> None:
        try:
            outcome = PublishOutcome.model_validate_json(value)
        except ValidationError:
            log.warning("Unreadable outcome skipped", size=len(value))
            return
        self.followed += 1
        request_id = outcome.request_event_id
        if request_id is None:
            return
        _remember(self._decided, request_id, outcome, _KEEP_DECIDED)
        self._pending.pop(request_id, None)
        for waiter in self._waiters.pop(request_id, set()):
            if not waiter.done():
                waiter.set_result(outcome)

    def expect(self, request_id: uuid.UUID, user_id: uuid.UUID) -> asyncio.Future[PublishOutcome]:
        """A future for the outcome of `request_id`, registered before the request is sent;
        the request counts as pending for `user_id` until its outcome arrives."""
        waiter: asyncio.Future[PublishOutcome] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(request_id, set()).add(waiter)
        _remember(self._pending, request_id, user_id, _KEEP_PENDING)
        return waiter

    def release(self, request_id: uuid.UUID, waiter: asyncio.Future[PublishOutcome]) -> None:
        """The caller stopped waiting (answered, timed out or gone)."""
        waiters = self._waiters.get(request_id)
        if waiters is not None:
            waiters.discard(waiter)
            if not waiters:
                del self._waiters[request_id]

    def withdraw(self, request_id: uuid.UUID) -> None:
        """The request was never sent: nobody may poll for it."""
        self._pending.pop(request_id, None)

    def decided(self, request_id: uuid.UUID) -> PublishOutcome | None:
        return self._decided.get(request_id)

    def pending_for(self, request_id: uuid.UUID) -> uuid.UUID | None:
        """The user a request still pending here was sent for."""
        return self._pending.get(request_id)

    @property
    def waiting(self) -> int:
        return sum(len(waiters) for waiters in self._waiters.values())
