"""The faust side of the rates stream: topics, changelog-backed tables, whole fetches, the timer.

faust stays in this module; the rest of the stream sees typed callbacks and three tables
(`streams.text_table`) which faust replays from their changelogs before the first fold:

- `partials`, a worker's partial slots keyed "partition:slot", with as many partitions as the
  outcomes topic. `partition_for_key` puts each key in the changelog partition of its source
  partition, so faust's co-partitioning assignor hands a worker the outcomes partition and
  the changelog partition that holds its partials together, and recovers them together;
- `window` (the latest partial of every partition) and `rule-phases`, one partition each,
  co-partitioned with the one-partition partials topic: whichever worker holds that topic
  holds both tables and is the evaluator.

Two phases (see `streams.rates`): every worker folds the outcome partitions it holds and
publishes each changed partial to the partials topic; the evaluator folds that topic into
`window`, and only it evaluates the rules. With one worker it holds everything and does both.

Whole fetches: faust hands a stream one record at a time (per record a `wait_first` of four
tasks, an Event, a queue, an ack), most of the stream's CPU per outcome. So this app has no
agent: its consumer's `_drain_messages` gives each fetch's outcome records, per partition, to
the fold in one call and acks them in one step into faust's own offset bookkeeping, where
faust still finds their gaps (`_add_gap`), commits them on its timer after flushing the
changelog sends, and seeks back to them on a rebalance. Records of other topics (the
changelogs, read during recovery) take faust's own path, record by record.

faust internals relied on (faust-streaming 0.15.3, pinned in pyproject.toml;
tests/unit/test_faust_internals.py fails when an upgrade changes them): on `Consumer`,
`_drain_messages(fetcher)` (replaced), `_wait_next_records(timeout)` returning (records by
partition, active partitions), `perform_seek`, `commit`, `callback`, `_to_message`,
`flow_active`, `suspend_flow`, `_buffered_partitions`, `_commit_every`, the bookkeeping
`ack` keeps under `faust.types.tuples.ack_lock` (`_acked`, `_acked_index`, `_n_acked`,
`_committed_offset`, `_read_offset`), `_add_gap(tp, offset_from, offset_to)` with its end
inclusive (corrected below), `_new_consumer_thread`; on `App`, `consumer_generation_id`,
`flow_control.acquire`, `producer.buffer.wait_until_ebb`, `topics.add`,
`topics.acks_enabled_for`, `monitor.stream_inbound_time` (read by faust's slow-processing
checks), `rebalancing`, `in_recovery`, `tables.add`, `tables.beacon`;
`AIOKafkaConsumerThread._create_worker_consumer(transport)`; `Table.partition_for_key(key)`
(replaced), called by `on_key_set` and `on_key_del` for the changelog partition of a write.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from time import monotonic
from types import MappingProxyType
from typing import Any, Protocol, cast

import faust
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types.tuples import ack_lock

from schemas.settings import Settings
from streams.rates import parse_partial_key
from streams.text_table import TextTable

FAUST_VERSION = "0.15.3"
# A fold writes each slot it touches once per call: bigger fetches cost less per outcome.
MAX_POLL_RECORDS = 10_000


class StreamCrashed(RuntimeError):
    """faust stopped the app after an error in the fold, the timer or a client."""


class FetchedRecord(Protocol):
    """A record as a fetch returns it (aiokafka's `ConsumerRecord`)."""

    offset: int
    key: bytes | None
    value: bytes | None


BatchHandler = Callable[[int, Sequence[FetchedRecord]], None]


class _ReadCommittedConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """faust reads with `read_committed` only under its exactly-once mode; outcomes are
    written in Kafka transactions, so aborted ones must not count: read committed always."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        # faust consults this flag, while building the client, only to pick the isolation level.
        consumer, outside = self.consumer, self.consumer.in_transaction
        consumer.in_transaction = True
        try:
            return super()._create_worker_consumer(transport)
        finally:
            consumer.in_transaction = outside


class _ReadCommittedConsumer(faust_aiokafka.Consumer):
    """Reads committed, and hands whole fetches of the topics in `batch_handlers` to them."""

    batch_handlers: Mapping[str, BatchHandler] = MappingProxyType({})

    def _new_consumer_thread(self) -> Any:
        return _ReadCommittedConsumerThread(self, loop=self.loop, beacon=self.beacon)

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
                    if (handler := self.batch_handlers.get(tp.topic)) is None:
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
        self, tp: Any, fetched: Sequence[Any], handler: BatchHandler, generation: int
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


class _ReadCommittedTransport(faust_aiokafka.Transport):
    Consumer = _ReadCommittedConsumer


class _PartialsTable(faust.Table[str, str]):
    """A table whose key "partition:slot" names the changelog partition it is written to.

    faust would take the partition of the event being processed, and there is none: the
    consumer folds whole fetches outside faust's streams."""

    def partition_for_key(self, key: Any) -> int | None:
        return parse_partial_key(cast(str, key))[0]


def broker_credentials(settings: Settings) -> object | None:
    """faust's form of the Kafka security settings (`Settings.kafka_client_options`)."""
    options = settings.kafka_client_options()
    context = cast(ssl.SSLContext | None, options.get("ssl_context"))
    if settings.kafka_sasl_mechanism is not None:
        return faust.SASLCredentials(
            username=cast(str, options["sasl_plain_username"]),
            password=cast(str, options["sasl_plain_password"]),
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def broker_url(settings: Settings) -> str:
    hosts = [h.strip() for h in settings.kafka_bootstrap_servers.split(",") if h.strip()]
    return ";".join(f"kafka://{host}" for host in hosts)


class FaustRates:
    """The faust app and its tables; `attach` wires the callbacks, `start`/`stop` own it."""

    def __init__(self, settings: Settings) -> None:
        self.app_id = f"{settings.consumer_group}-rates"
        # Named as faust names its changelogs: internal to this app, one per group.
        self.partials_topic = f"{self.app_id}-partials"
        app: Any = faust.App(
            self.app_id,
            broker=broker_url(settings),
            broker_credentials=broker_credentials(settings),
            store="memory://",
            web_enabled=False,
            autodiscover=False,
            topic_partitions=settings.topic_partitions,
            topic_replication_factor=settings.topic_replication_factor,
            consumer_auto_offset_reset="earliest",
            broker_commit_interval=1.0,
            broker_max_poll_records=MAX_POLL_RECORDS,
            stream_wait_empty=False,
            # As the publish consumer's: a killed worker's partitions move after 10 s, not
            # faust's default 60 s of outcomes left uncounted.
            broker_session_timeout=10.0,
            broker_heartbeat_interval=3.0,
        )
        app.transport = _ReadCommittedTransport(app.conf.broker_consumer, app)
        self._app = app
        self._settings = settings
        raw = {"key_serializer": "raw", "value_serializer": "raw"}
        self._outcomes = app.topic(settings.topic_outcomes, **raw)
        self._partials = app.topic(self.partials_topic, partitions=1, **raw)
        self._alerts = app.topic(settings.topic_alerts, **raw)
        text = {"key_type": str, "value_type": str}
        self.partials = TextTable(
            app.tables.add(
                _PartialsTable(
                    app,
                    name="partials",
                    beacon=app.tables.beacon,
                    partitions=settings.topic_partitions,
                    key_type=str,
                    value_type=str,
                )
            )
        )
        self.window = TextTable(app.Table("window", partitions=1, use_partitioner=True, **text))
        self.rule_phases = TextTable(
            app.Table("rule-phases", partitions=1, use_partitioner=True, **text)
        )

    def attach(
        self,
        on_outcomes: BatchHandler,
        on_partials: BatchHandler,
        timers: Mapping[str, tuple[float, Callable[[], Awaitable[object]]]],
    ) -> None:
        """`on_outcomes(partition, records)` gets each fetch's outcome records of a partition,
        `on_partials` those of the partials topic; each of `timers`, by name, runs every so
        many seconds while the tables are whole (never during a rebalance or a recovery)."""

        def settled_only(run: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[None]]:
            async def timer() -> None:
                if self.settled:
                    await run()

            return timer

        # Subscribed through the conductor as an agent's topics would be (acks enabled), but
        # their records never reach a faust stream: the consumer folds them whole.
        self._app.topics.add(self._outcomes)
        self._app.topics.add(self._partials)
        consumer = cast(_ReadCommittedConsumer, self._app.consumer)
        consumer.batch_handlers = MappingProxyType(
            {self._settings.topic_outcomes: on_outcomes, self.partials_topic: on_partials}
        )
        for name, (seconds, run) in timers.items():
            self._app.timer(seconds, name=name)(settled_only(run))

    @property
    def recovered(self) -> bool:
        """True once the tables hold what their changelogs held (set after the first assignment)."""
        return bool(self._app.tables.recovery.completed.is_set())

    @property
    def settled(self) -> bool:
        """Recovered, and neither rebalancing nor recovering again."""
        app = self._app
        return self.recovered and not app.rebalancing and not app.in_recovery

    @property
    def generation(self) -> int:
        """The consumer group's generation: it changes with every rebalance."""
        return int(self._app.consumer_generation_id)

    def held_partitions(self) -> set[int]:
        """The outcomes partitions assigned to this worker."""
        topic = self._settings.topic_outcomes
        return {tp.partition for tp in self._app.consumer.assignment() if tp.topic == topic}

    def evaluates(self) -> bool:
        """Whether this worker holds the partials topic, and so the window and the rules."""
        return any(tp.topic == self.partials_topic for tp in self._app.consumer.assignment())

    def publish_partial(self, key: str, value: bytes) -> None:
        """Queued on faust's producer, which the fold waits on before each fetch."""
        self._partials.send_soon(key=key.encode("utf-8"), value=value, partition=0)

    async def send_alert(self, key: str, value: bytes) -> None:
        """Send and wait for the broker's acknowledgement."""
        pending = await self._alerts.send(key=key.encode("utf-8"), value=value)
        await pending

    async def start(self) -> None:
        await self._app.start()

    async def stop(self) -> None:
        await self._app.stop()

    async def until_stopped(self) -> None:
        """Return when the app stops; raise `StreamCrashed` if it stopped by crashing."""
        await self._app.wait_until_stopped()
        if self._app.crashed:
            raise StreamCrashed(repr(self._app.crash_reason)) from self._app.crash_reason
