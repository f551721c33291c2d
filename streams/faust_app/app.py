"""The rates stream's faust app: its topics, its three changelog-backed tables, its timers.

The rest of the stream sees typed callbacks and three tables (`streams.text_table`),
replayed from their changelogs before the first fold: `partials` (keys "partition:slot",
written to the changelog partition of their source partition, so faust's co-partitioning
assignor hands a worker an outcomes partition with its partials), and `window` and
`rule-phases`, one partition each, held with the one-partition partials topic by the
evaluator (the two phases: `streams.rates`).

faust internals relied on here (the version pinned in `streams.faust_app`): on `App`,
`topics.add`, `rebalancing`, `in_recovery`, `consumer_generation_id`, `tables.add`,
`tables.beacon`, `tables.recovery.completed`; `Table.partition_for_key(key)` (replaced),
called by `on_key_set` and `on_key_del` for the changelog partition of a write.
"""

from __future__ import annotations

import ssl
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast

import faust

from schemas.settings import Settings
from streams.faust_app.fetching import (
    FetchHandler,
    FetchPacing,
    ReadCommittedConsumer,
    ReadCommittedTransport,
)
from streams.rates import parse_partial_key
from streams.text_table import TextTable

# A fold writes each slot it touches once per call: bigger fetches cost less per outcome.
MAX_POLL_RECORDS = 10_000


class StreamCrashed(RuntimeError):
    """faust stopped the app after an error in the fold, the timer or a client."""


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
            # The tables live in memory, yet faust makes an empty data directory anyway, by
            # default one per group in the working directory. One shared place, off the
            # working directory: nothing is ever written there.
            datadir=Path(tempfile.gettempdir()) / "store-publish-rates",
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
        app.transport = ReadCommittedTransport(app.conf.broker_consumer, app)
        # At low rates each fetch answered as soon as one transaction of outcomes is ready
        # costs a wake-up of faust's consumer thread and loop: the broker holds it instead.
        app.transport.fetch = FetchPacing(
            settings.stream_fetch_min_bytes, settings.stream_fetch_max_wait_ms
        )
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
        on_outcomes: FetchHandler,
        on_partials: FetchHandler,
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
        consumer = cast(ReadCommittedConsumer, self._app.consumer)
        consumer.fetch_handlers = MappingProxyType(
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
