"""The faust internals `streams.faust_app` relies on are still there, as they were read, and
its whole-fetch path keeps faust's offset accounting: gaps of transaction markers, records
read again after a seek, one call per partition and fetch. No broker: the app is built, never
started."""

from __future__ import annotations

import hashlib
import inspect
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
import pytest
from aiokafka import AIOKafkaConsumer
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types.tuples import TP, ack_lock

from schemas.settings import Settings
from streams.faust_app import FAUST_VERSION, FaustRates, FetchedRecord

ROOT = Path(__file__).resolve().parents[2]
TOPIC = "unit.outcomes"

# The faust code whose behaviour the whole-fetch path reproduces, as read in 0.15.3. A new
# fingerprint means faust changed it: read it again, adapt streams.faust_app, then update.
FINGERPRINTS = {
    "Consumer._drain_messages": "44a25003",
    "Consumer.getmany": "4b168d84",
    "Consumer.ack": "5fcf41cf",
    "Consumer._add_gap": "4df2573d",
    "Consumer._new_offset": "1d2c7ea8",
    "Consumer._wait_next_records": "6218e196",
    "Consumer.perform_seek": "0e8c130f",
}

# The parameters streams.faust_app calls or overrides them with.
SIGNATURES: dict[tuple[type, str], tuple[str, ...]] = {
    (faust_consumer.Consumer, "_drain_messages"): ("self", "fetcher"),
    (faust_consumer.Consumer, "_wait_next_records"): ("self", "timeout"),
    (faust_consumer.Consumer, "_add_gap"): ("self", "tp", "offset_from", "offset_to"),
    (faust_consumer.Consumer, "perform_seek"): ("self",),
    (faust_consumer.Consumer, "commit"): ("self", "topics", "start_new_transaction"),
    (faust_aiokafka.Consumer, "_new_consumer_thread"): ("self",),
    (faust_aiokafka.Consumer, "_to_message"): ("self", "tp", "record"),
    (faust_aiokafka.AIOKafkaConsumerThread, "_create_worker_consumer"): ("self", "transport"),
    (faust.Table, "partition_for_key"): ("self", "key"),
    (faust.Table, "send_changelog"): (
        "self",
        "partition",
        "key",
        "value",
        "key_serializer",
        "value_serializer",
    ),
}

# The table writes whose changelog partition `_PartialsTable.partition_for_key` decides.
TABLE_FINGERPRINTS = {"on_key_set": "a370e35c", "on_key_del": "4f2900b2"}


def fingerprint(qualified: str) -> str:
    owner, name = qualified.split(".")
    source = inspect.getsource(getattr(getattr(faust_consumer, owner), name))
    return hashlib.sha256(source.encode()).hexdigest()[:8]


@pytest.mark.parametrize("name", sorted(TABLE_FINGERPRINTS))
def test_the_table_writes_still_ask_partition_for_key(name: str) -> None:
    source = inspect.getsource(getattr(faust.Table, name))
    assert "self.partition_for_key(key)" in source, name
    assert hashlib.sha256(source.encode()).hexdigest()[:8] == TABLE_FINGERPRINTS[name], name


async def test_a_partial_is_written_to_the_changelog_partition_of_its_source_partition() -> None:
    settings = Settings(_env_file=None, topic_outcomes=TOPIC, topic_partitions=6)  # type: ignore[call-arg]
    rates = FaustRates(settings)
    table: Any = rates.partials._table
    sent: list[tuple[str, int | None]] = []
    send = table.send_changelog

    def spy(partition: int | None, key: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
        future = send(partition, key, value, *args, **kwargs)
        sent.append((key, future.message.partition))
        return future

    table.send_changelog = spy
    rates.partials["3:17"] = b"{}"
    rates.partials["5:17"] = b"{}"
    del rates.partials["3:17"]
    assert sent == [("3:17", 3), ("5:17", 5), ("3:17", 3)]
    # Co-partitioned with the outcomes; the evaluator's tables with the one-partition topic.
    assert table.changelog_topic.partitions == 6
    assert rates.window._table.changelog_topic.partitions == 1
    assert rates.rule_phases._table.changelog_topic.partitions == 1
    assert rates._partials.partitions == 1


def test_the_installed_faust_is_the_pinned_one() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert f"faust-streaming=={FAUST_VERSION}" in pyproject["project"]["dependencies"]
    assert faust.__version__ == FAUST_VERSION == "0.15.3"


@pytest.mark.parametrize("qualified", sorted(FINGERPRINTS))
def test_the_faust_code_the_fetch_path_reproduces_is_unchanged(qualified: str) -> None:
    assert fingerprint(qualified) == FINGERPRINTS[qualified], qualified


@pytest.mark.parametrize(("owner", "name"), sorted(SIGNATURES, key=str))
def test_the_faust_methods_relied_on_keep_their_signatures(owner: type, name: str) -> None:
    parameters = tuple(inspect.signature(getattr(owner, name)).parameters)
    assert parameters == SIGNATURES[(owner, name)], f"{owner.__qualname__}.{name}"


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    value: bytes | None


class Folded:
    def __init__(self) -> None:
        self.calls: list[tuple[int, list[int]]] = []

    def __call__(self, partition: int, records: Sequence[FetchedRecord]) -> None:
        self.calls.append((partition, [r.offset for r in records]))


async def consumer_with(folded: Folded) -> Any:
    """The stream's consumer, not started, subscribed to TOPIC and free to flow."""
    settings = Settings(_env_file=None, topic_outcomes=TOPIC)  # type: ignore[call-arg]
    rates = FaustRates(settings)

    async def tick() -> None:
        return None

    rates.attach(folded, folded, {"tick": (1.0, tick)})
    app: Any = rates._app
    await app.topics._update_indices()
    app.flow_control.resume()
    return app.consumer


async def test_the_stream_client_is_built_with_the_fetch_pacing_of_its_settings() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        topic_outcomes=TOPIC,
        stream_fetch_min_bytes=4096,
        stream_fetch_max_wait_ms=70,
    )
    app: Any = FaustRates(settings)._app
    thread = app.consumer._thread
    client = thread._create_worker_consumer(app.transport)
    assert (client._fetch_min_bytes, client._fetch_max_wait_ms) == (4096, 70)
    # aiokafka hands both to the fetcher it builds when it starts.
    source = inspect.getsource(AIOKafkaConsumer.start)
    assert "fetch_min_bytes=self._fetch_min_bytes" in source
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in source


async def test_the_faust_attributes_relied_on_exist() -> None:
    consumer = await consumer_with(Folded())
    app = consumer.app
    for name in (
        "_acked",
        "_acked_index",
        "_n_acked",
        "_committed_offset",
        "_read_offset",
        "_commit_every",
        "_buffered_partitions",
        "flow_active",
        "suspend_flow",
        "callback",
    ):
        assert hasattr(consumer, name), name
    assert isinstance(app.consumer_generation_id, int)
    assert callable(app.flow_control.acquire)
    assert callable(app.producer.buffer.wait_until_ebb)
    assert app.topics.acks_enabled_for(TOPIC)
    assert isinstance(app.monitor.stream_inbound_time, dict)
    assert callable(ack_lock.acquire)
    assert faust_consumer.CONSUMER_FETCHING == "FETCHING"


async def test_a_fetch_is_folded_in_one_call_and_committable_past_its_markers() -> None:
    folded = Folded()
    consumer = await consumer_with(folded)
    tp = TP(TOPIC, 0)
    # Four one-record transactions: records at even offsets, their commit markers between.
    fetch = [Record(TOPIC, 0, offset, b"{}") for offset in (0, 2, 4, 6)]
    await consumer._fold_whole(tp, fetch, consumer.fetch_handlers[TOPIC], 0)
    assert folded.calls == [(0, [0, 2, 4, 6])]
    assert consumer._read_offset[tp] == 6
    assert consumer._new_offset(tp) == 7


async def test_records_before_the_read_offset_are_dropped_as_faust_drops_them() -> None:
    """faust delivers from its read offset on, that record included (after a seek it is the
    next to read); the fold's per-partition offsets make that one harmless."""
    folded = Folded()
    consumer = await consumer_with(folded)
    tp = TP(TOPIC, 1)
    handler = consumer.fetch_handlers[TOPIC]
    await consumer._fold_whole(tp, [Record(TOPIC, 1, o, b"{}") for o in range(5)], handler, 0)
    await consumer._fold_whole(tp, [Record(TOPIC, 1, o, b"{}") for o in range(3, 8)], handler, 0)
    assert folded.calls == [(1, [0, 1, 2, 3, 4]), (1, [4, 5, 6, 7])]
    assert consumer._new_offset(tp) == 8


async def test_a_fetch_of_a_stale_generation_is_dropped_unacked() -> None:
    folded = Folded()
    consumer = await consumer_with(folded)
    tp = TP(TOPIC, 2)
    stale = consumer.app.consumer_generation_id - 1
    handler = consumer.fetch_handlers[TOPIC]
    await consumer._fold_whole(tp, [Record(TOPIC, 2, 0, b"{}")], handler, stale)
    assert folded.calls == []
    assert consumer._new_offset(tp) is None
