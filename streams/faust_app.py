"""The faust side of the rates stream: topics, changelog-backed tables, the agent, the timer.

faust stays in this module; the rest of the stream sees typed callbacks and two
`MutableMapping[str, bytes]` tables.

- `slots`: the window's slots (`streams.rates.Slot`, encoded), keyed by slot number.
- `rule_states`: each rule's phase (`streams.alerts.RuleState`, encoded), keyed by rule.

Both are plain faust Tables, not faust's windowed tables: a windowed table keeps one value
per (key, window range) and answers "the value at a time", while a sliding rate needs the
merge of every slot in the window, and a DDSketch is no value faust knows how to add. So the
slot arithmetic lives in `streams.rates`, and the tables only make it durable: every write
goes to a compacted changelog topic, which faust replays into the table before the agent
sees its first record, so a restarted worker resumes with its counts and its alert phases.
`use_partitioner=True` places each key by its hash, so the timer may also write (rule
states, expired slots deleted) outside the agent.

The stream runs as a single worker: the alert rules need the whole outcome stream, and a
second worker would see only the partitions assigned to it.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

from schemas.settings import Settings

TAKE_MAX = 2000
TAKE_WITHIN_SECONDS = 0.25


class StreamCrashed(RuntimeError):
    """faust stopped the app after an error in the agent, the timer or a client."""


@dataclass(frozen=True)
class FetchedRecord:
    partition: int
    offset: int
    value: bytes


class _ReadCommittedConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """faust reads with `read_committed` only under its exactly-once mode; outcomes are
    written in Kafka transactions, so aborted ones must not count: read committed always."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = self.consumer
        outside = consumer.in_transaction
        # faust consults this flag, while building the client, only to pick the isolation level.
        consumer.in_transaction = True
        try:
            return super()._create_worker_consumer(transport)
        finally:
            consumer.in_transaction = outside


class _ReadCommittedConsumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> Any:
        return _ReadCommittedConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _add_gap(self, tp: Any, offset_from: int, offset_to: int) -> None:
        """A gap in the offsets read (each transaction's commit marker is one) ends before the
        record that revealed it. faust passes that record's offset as the gap's inclusive
        end, so the record sits twice in its acked list once acked, and each commit then
        advances past one transaction only: at a few hundred small transactions a second the
        committed offsets fall behind without bound (faust-streaming/faust#606,
        robinhood/faust#625)."""
        await super()._add_gap(tp, offset_from, offset_to - 1)


class _ReadCommittedTransport(faust_aiokafka.Transport):
    Consumer = _ReadCommittedConsumer


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


class _QuietMonitor(faust.Monitor):
    """faust's Monitor without its per-message and per-event bookkeeping: it times every
    record for web views this app does not serve (web_enabled=False), a sizeable part of
    the stream's CPU per outcome. Offsets, commits and rebalances are still tracked."""

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        pass

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        return None

    def on_stream_event_out(
        self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None
    ) -> None:
        pass

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        pass


class _TextTable(MutableMapping[str, bytes]):
    """A faust Table of UTF-8 text seen as bytes.

    faust picks a table's serializer from its value type, not its schema, and decodes the
    changelog with it on recovery: JSON text (our encodings) stored as `str` round-trips.
    """

    def __init__(self, table: Any) -> None:
        self._table = table

    def __getitem__(self, key: str) -> bytes:
        return cast(str, self._table[key]).encode("utf-8")

    def __setitem__(self, key: str, value: bytes) -> None:
        self._table[key] = value.decode("utf-8")

    def __delitem__(self, key: str) -> None:
        del self._table[key]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._table.keys()))

    def __len__(self) -> int:
        return len(self._table)


class FaustRates:
    """The faust app and its tables; `attach` wires the callbacks, `start`/`stop` own it."""

    def __init__(self, settings: Settings) -> None:
        self.app_id = f"{settings.consumer_group}-rates"
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
            stream_wait_empty=False,
        )
        app.transport = _ReadCommittedTransport(app.conf.broker_consumer, app)
        app.monitor = _QuietMonitor()
        self._app = app
        self._settings = settings
        self._outcomes = app.topic(
            settings.topic_outcomes, key_serializer="raw", value_serializer="raw"
        )
        self._alerts = app.topic(
            settings.topic_alerts, key_serializer="raw", value_serializer="raw"
        )
        self.slots = _TextTable(
            app.Table("slots", key_type=str, value_type=str, use_partitioner=True)
        )
        self.rule_states = _TextTable(
            app.Table("rule-states", key_type=str, value_type=str, use_partitioner=True)
        )

    def attach(
        self,
        on_batch: Callable[[Sequence[FetchedRecord]], None],
        on_tick: Callable[[], Awaitable[object]],
        interval_seconds: float,
    ) -> None:
        async def rates(stream: Any) -> None:
            async for events in stream.take_events(TAKE_MAX, within=TAKE_WITHIN_SECONDS):
                on_batch(
                    [
                        FetchedRecord(e.message.partition, e.message.offset, e.message.value or b"")
                        for e in events
                    ]
                )

        async def evaluate() -> None:
            if self.recovered:
                await on_tick()

        self._app.agent(self._outcomes, name="rates")(rates)
        self._app.timer(interval_seconds, name="evaluate")(evaluate)

    @property
    def recovered(self) -> bool:
        """True once the tables hold what their changelogs held (set after the first assignment)."""
        return bool(self._app.tables.recovery.completed.is_set())

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
