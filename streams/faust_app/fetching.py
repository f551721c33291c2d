"""Whole fetches: the stream's faust consumer hands each fetch's records of a partition to
a handler in one call.

faust hands a stream one record at a time (a `wait_first` of four tasks, an Event, a queue
and an ack each), most of the stream's CPU. So the app has no agent: this consumer's
`_drain_messages` gives each fetch's records of a partition to a handler in one call and
acks them in one step into faust's offset bookkeeping, where faust still finds their gaps
(`_add_gap`), commits them after flushing the changelog sends, and seeks back to them on a
rebalance. Changelog records (recovery, standbys) take faust's own path.

faust internals relied on here (the version pinned in `streams.faust_app`): on `Consumer`,
`_drain_messages(fetcher)` (replaced), `_wait_next_records(timeout)` returning (records by
partition, active partitions), `perform_seek`, `commit`, `callback`, `_to_message`,
`flow_active`, `suspend_flow`, `_buffered_partitions`, `_commit_every`, the bookkeeping
`ack` keeps under `faust.types.tuples.ack_lock` (`_acked`, `_acked_index`, `_n_acked`,
`_committed_offset`, `_read_offset`), `_add_gap(tp, offset_from, offset_to)` with its end
inclusive (corrected below), `_new_consumer_thread`; on `App`, `consumer_generation_id`,
`flow_control.acquire`, `producer.buffer.wait_until_ebb`, `topics.acks_enabled_for`,
`monitor.stream_inbound_time` (read by faust's slow-processing checks);
`AIOKafkaConsumerThread._create_worker_consumer(transport)`; on aiokafka's
`AIOKafkaConsumer`, `_fetch_min_bytes` and `_fetch_max_wait_ms`, read by `start`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from time import monotonic
from types import MappingProxyType
from typing import Any, Protocol

from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types.tuples import ack_lock


class FetchedRecord(Protocol):
    """A record as a fetch returns it (aiokafka's `ConsumerRecord`)."""

    offset: int
    key: bytes | None
    value: bytes | None


FetchHandler = Callable[[int, Sequence[FetchedRecord]], None]


class ReadCommittedConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """faust reads with `read_committed` only under its exactly-once mode; outcomes are
    written in Kafka transactions, so aborted ones must not count: read committed always."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        # faust consults this flag, while building the client, only to pick the isolation level.
        consumer, outside = self.consumer, self.consumer.in_transaction
        consumer.in_transaction = True
        try:
            client = super()._create_worker_consumer(transport)
        finally:
            consumer.in_transaction = outside
        # faust passes no fetch_min_bytes and a fixed fetch_max_wait_ms; the client reads
        # both when it starts and builds its fetcher, so they are set before that.
        fetch = getattr(transport, "fetch", None)
        if isinstance(fetch, FetchPacing):
            client._fetch_min_bytes = fetch.min_bytes
            client._fetch_max_wait_ms = fetch.max_wait_ms
        return client


class ReadCommittedConsumer(faust_aiokafka.Consumer):
    """Reads committed, and hands whole fetches of the topics in `fetch_handlers` to them."""

    fetch_handlers: Mapping[str, FetchHandler] = MappingProxyType({})

    def _new_consumer_thread(self) -> Any:
        return ReadCommittedConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _add_gap(self, tp: Any, offset_from: int, offset_to: int) -> None:
        """A gap in the offsets read (a transaction's commit marker) ends before the record
        that revealed it; faust passes that record's offset as the gap's inclusive end, so
        each commit advances past one transaction only (faust-streaming/faust#606)."""
        await super()._add_gap(tp, offset_from, offset_to - 1)

    async def _drain_messages(self, fetcher: Any) -> None:
        """faust's fetch loop and `getmany`, their checks of flow, generation and active
        partitions made per fetch and partition instead of per record."""
        app = self.app
        stopped, fetcher_stopped = self._stopped.is_set, fetcher._stopped.is_set
        ending: tuple[type[BaseException], ...] = (asyncio.CancelledError,)
        ending += self.consumer_stopped_errors
        try:
            while not (stopped() or fetcher_stopped()):
                self.diag.set_flag(CONSUMER_FETCHING)
                records, active = await self._wait_next_records(1.0)
                generation = app.consumer_generation_id
                await self.sleep(0)
                if records is None or self.should_stop:
                    continue
                if not self.flow_active:
                    try:
                        await self.perform_seek()
                    except Exception as error:
                        self.log.warning(f"exception performing seek when flow not active {error}")
                    continue
                for tp, fetched in records.items():
                    if not self._current(generation):
                        break
                    if active is not None and tp not in active | self._buffered_partitions:
                        continue
                    app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                    if (handler := self.fetch_handlers.get(tp.topic)) is None:
                        await self._deliver_each(tp, fetched, generation)
                    elif fetched and not await self._fold_whole(tp, fetched, handler, generation):
                        return
                self.diag.unset_flag(CONSUMER_FETCHING)
        except ending:
            if not app.should_stop:
                raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    def _current(self, generation: int) -> bool:
        return bool(self.flow_active) and self.app.consumer_generation_id == generation

    async def _deliver_each(self, tp: Any, fetched: Sequence[Any], generation: int) -> None:
        """faust's own path, one record at a time through the conductor."""
        acks = self.app.topics.acks_enabled_for(tp.topic)
        for record in fetched:
            if not self._current(generation):
                return
            offset, read = record.offset, self._read_offset[tp]
            if read is not None and offset < read:
                continue
            if acks and read and offset - read > 1:
                await self._add_gap(tp, read + 1, offset)
            await self._commit_every_n()
            message = self._to_message(tp, record)
            await self.wait_first(self.callback(message), self.suspend_flow.wait())
            self._read_offset[tp] = offset

    async def _fold_whole(
        self, tp: Any, fetched: Sequence[Any], handler: FetchHandler, generation: int
    ) -> bool:
        """Fold one partition's fetch in one call, ack it at once; False if the fold failed."""
        read = self._read_offset[tp]
        if read is not None and fetched[0].offset < read:
            fetched = [r for r in fetched if r.offset >= read]
        if not fetched:
            return True
        acks = self.app.topics.acks_enabled_for(tp.topic)
        if acks and not (read is not None and fetched[-1].offset - read == len(fetched)):
            previous = read
            for record in fetched:
                # faust tests the read offset for truth, missing a gap after offset 0.
                if previous is not None and record.offset - previous > 1:
                    await self._add_gap(tp, previous + 1, record.offset)
                previous = record.offset
        # As the conductor waits before it hands a record on: for a rebalance or a recovery
        # to end, and for the producer's buffer (the changelog sends) to drain.
        await self.app.flow_control.acquire()
        await self.app.producer.buffer.wait_until_ebb()
        if not self._current(generation):
            return True
        try:
            handler(tp.partition, fetched)
        except Exception as error:
            # A bug: the app stops crashed, the fetch loop ends, nothing past these records is
            # acked or committed; the next start reads them again.
            await self.app.crash(error)
            return False
        self._read_offset[tp] = fetched[-1].offset
        if acks:
            self._ack_all(tp, [r.offset for r in fetched])
        self.app.monitor.stream_inbound_time[tp] = monotonic()
        await self._commit_every_n()
        return True

    def _ack_all(self, tp: Any, offsets: list[int]) -> None:
        """`Consumer.ack` for every offset at once: the same bookkeeping, one step."""
        with ack_lock:
            if (committed := self._committed_offset[tp]) is not None and offsets[0] < committed:
                offsets = [o for o in offsets if o >= committed]
            index = self._acked_index[tp]
            offsets = [o for o in offsets if o not in index]
            index.update(offsets)
            self._acked[tp].extend(offsets)
            self._n_acked += len(offsets)

    async def _commit_every_n(self) -> None:
        if self._commit_every is not None and self._n_acked >= self._commit_every:
            self._n_acked = 0
            await self.commit()


@dataclass(frozen=True)
class FetchPacing:
    """How long the broker may hold a fetch for more bytes: a fetch is answered once
    `min_bytes` are ready or after `max_wait_ms`."""

    min_bytes: int
    max_wait_ms: int


class ReadCommittedTransport(faust_aiokafka.Transport):
    Consumer = ReadCommittedConsumer
    # Set by the app before it starts; None keeps faust's (1 byte, 1,500 ms).
    fetch: FetchPacing | None = None
