"""The stream's two phases with in-memory tables and topic: workers fold the partitions they
hold into partials, the evaluator keeps the latest of each; N workers give the window and the
alerts one worker gives, and a partial sent again, late or twice never counts twice."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry

from schemas.events import Alert, Status
from schemas.settings import Settings
from streams.evaluating import Evaluator
from streams.folding import Folder
from streams.metrics import StreamMetrics
from streams.partials import Partials
from streams.rates import Geometry, Slot, Snapshot
from tests.helpers.stream import outcome as made_outcome

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
PARTITIONS = 6
STATUSES = [Status.PUBLISHED, Status.GATED, Status.REJECTED, Status.FAILED]


@dataclass(frozen=True)
class Record:
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass
class SteppedClock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


def settings() -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        alert_window_seconds=60.0,
        alert_min_events=10,
        alert_error_rate_for_seconds=0.0,
        alert_rollback_for_seconds=0.0,
    )


def outcome(rng: random.Random, at: datetime) -> bytes:
    made = made_outcome(
        rng.choice(STATUSES),
        attempts=rng.choice([1, 1, 2, 3]),
        latency_ms=rng.lognormvariate(4, 1),
        at=at,
    )
    return made.model_dump_json().encode()


def outcomes_topic(seed: int, per_partition: int) -> dict[int, list[Record]]:
    """Outcome records by partition, stamped over the last 50 s before T0."""
    rng = random.Random(seed)
    return {
        p: [
            Record(o, None, outcome(rng, T0 - timedelta(seconds=rng.uniform(0, 50))))
            for o in range(per_partition)
        ]
        for p in range(PARTITIONS)
    }


@dataclass
class Group:
    """Workers over in-memory tables, one partials topic, and one evaluator."""

    clock: SteppedClock = field(default_factory=SteppedClock)
    topic: list[Record] = field(default_factory=list)
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    sent: list[Alert] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.metrics = StreamMetrics.create(self.registry)
        self.geometry = Geometry(settings().alert_window_seconds)
        self.window: dict[str, bytes] = {}
        self.phases: dict[str, bytes] = {}
        self.evaluator = Evaluator(
            settings(),
            self.geometry,
            Partials(self.window),
            self.phases,
            self.metrics,
            self._act,
            self._send,
            self.clock,
        )
        self.read = 0
        self.workers: list[Folder] = []

    async def _act(self, alert: Alert) -> None:
        return None

    async def _send(self, alert: Alert) -> None:
        self.sent.append(alert)

    def publish(self, key: str, value: bytes) -> None:
        self.topic.append(Record(len(self.topic), key.encode(), value))

    def worker(self, table: dict[str, bytes] | None = None) -> Folder:
        table = table if table is not None else {}
        folder = Folder(self.geometry, Partials(table), self.metrics, self.publish, self.clock)
        self.workers.append(folder)
        return folder

    def deliver(self, chunk: int = 7) -> None:
        """The workers publish what changed (each as if it held every partition); the
        evaluator reads what was published since it last read, in fetches of `chunk`."""
        for worker in self.workers:
            worker.publish(range(PARTITIONS))
        while self.read < len(self.topic):
            fetch = self.topic[self.read : self.read + chunk]
            self.evaluator.merge(0, fetch)
            self.read += len(fetch)

    async def window_now(self) -> Snapshot:
        self.deliver()
        await self.evaluator.tick()
        assert self.evaluator.last_window is not None
        return self.evaluator.last_window


def fetches(records: list[Record], rng: random.Random) -> Iterable[list[Record]]:
    at = 0
    while at < len(records):
        size = rng.randint(1, 40)
        yield records[at : at + size]
        at += size


async def test_n_workers_give_the_window_and_alerts_one_worker_gives() -> None:
    topic = outcomes_topic(seed=7, per_partition=120)
    one = Group()
    alone = one.worker()
    for partition, records in topic.items():
        alone.ingest(partition, records)
    alone_window = await one.window_now()

    many = Group()
    workers = [many.worker() for _ in range(3)]
    rng = random.Random(1)
    for partition, records in topic.items():
        for fetch in fetches(records, rng):
            workers[partition % 3].ingest(partition, fetch)
            if rng.random() < 0.3:
                many.deliver(chunk=rng.randint(1, 5))
    many_window = await many.window_now()

    assert many_window.counts == alone_window.counts
    assert many_window.counts.all == PARTITIONS * 120
    assert many_window.p95_latency_ms == alone_window.p95_latency_ms
    assert [(a.alert, a.state, a.value) for a in many.sent] == [
        (a.alert, a.state, a.value) for a in one.sent
    ]
    assert one.sent, "the seeded mix fires the error-rate rules"


async def test_a_late_or_repeated_partial_never_counts_twice_nor_goes_back() -> None:
    group = Group()
    worker = group.worker()
    records = outcomes_topic(seed=3, per_partition=40)[2]
    worker.ingest(2, records[:20])
    first = list(group.topic)
    worker.ingest(2, records[20:])
    group.deliver()
    assert (await group.window_now()).counts.all == 40
    # The first partials again (a worker's late send, a replay): older, so ignored.
    for record in first:
        group.publish(record.key.decode() if record.key else "", record.value or b"")
    assert (await group.window_now()).counts.all == 40
    # Everything sent again, in order: replaces, never adds.
    for record in list(group.topic):
        group.publish(record.key.decode() if record.key else "", record.value or b"")
    assert (await group.window_now()).counts.all == 40


async def test_a_worker_that_died_before_publishing_is_made_good_by_the_next_owner() -> None:
    group = Group()
    table: dict[str, bytes] = {}
    dying = group.worker(table)
    records = outcomes_topic(seed=5, per_partition=30)[4]
    dying.ingest(4, records[:10])
    group.deliver()
    # Written to its table (the changelog) but killed before its partials went out.
    dying.ingest(4, records[10:20])
    group.workers.remove(dying)
    # The next owner recovers the changelog, reads again from the committed offset (10), and
    # republishes what it holds after the rebalance.
    owner = group.worker(dict(table))
    owner.ingest(4, records[10:])
    # Slots that only the lost partials changed are not sent by the fold: it sees nothing new.
    assert (await group.window_now()).counts.all < 30
    owner.tick(held={4}, generation=2)
    assert (await group.window_now()).counts.all == 30


async def test_a_worker_expires_only_the_partials_of_partitions_it_holds() -> None:
    group = Group()
    table: dict[str, bytes] = {}
    worker = group.worker(table)
    topic = outcomes_topic(seed=9, per_partition=5)
    worker.ingest(0, topic[0])
    worker.ingest(1, topic[1])
    group.clock.now = T0 + timedelta(minutes=5)
    worker.tick(held={0}, generation=1)
    assert {key.split(":")[0] for key in table} == {"1"}
    assert (await group.window_now()).counts.all == 0


async def test_a_record_on_the_partials_topic_that_is_no_partial_is_counted_and_skipped() -> None:
    group = Group()
    worker = group.worker()
    worker.ingest(0, outcomes_topic(seed=2, per_partition=12)[0])
    group.publish("not-a-key", Slot().encode())
    group.publish("0:1", b"{not json")
    group.topic.append(Record(len(group.topic), None, None))
    assert (await group.window_now()).counts.all == 12
    assert group.registry.get_sample_value("store_publish_stream_invalid_partials_total") == 3


async def test_records_that_are_no_countable_outcome_are_counted_invalid_and_skipped() -> None:
    group = Group()
    worker = group.worker()
    good = outcomes_topic(seed=4, per_partition=3)[0]
    whole = json.loads(good[0].value or b"")
    bad_values: list[bytes | None] = [
        None,
        b"",
        b"{not json",
        b"[]",
        json.dumps({**whole, "status": "exploded"}).encode(),  # unknown status
        json.dumps({**whole, "attempts": "three"}).encode(),  # wrong type
        json.dumps({**whole, "attempts": -1}).encode(),  # out of range
        json.dumps({**whole, "processed_at": "2026-01-01T12:00:00"}).encode(),  # naive time
        json.dumps({**whole, "schema_version": 2}).encode(),  # a schema it does not know
        json.dumps({k: v for k, v in whole.items() if k != "latency_ms"}).encode(),
        b'{"status": "published", "latency_ms": 1e999' + b" " * 100_000 + b"}",  # huge, incomplete
    ]
    records = [*good, *(Record(3 + i, None, value) for i, value in enumerate(bad_values))]
    # A newer outcome with a field this version does not know is still an outcome.
    newer = json.dumps({**whole, "event_id": str(uuid.uuid4()), "region": "eu"}).encode()
    records.append(Record(len(records), None, newer))
    worker.ingest(0, records)
    assert (await group.window_now()).counts.all == len(good) + 1
    assert group.registry.get_sample_value("store_publish_stream_invalid_outcomes_total") == len(
        bad_values
    )


async def test_a_worker_publishes_the_latest_of_each_partial_changed_in_its_partitions() -> None:
    group = Group()
    worker = group.worker()
    topic = outcomes_topic(seed=6, per_partition=30)
    for records in (topic[0][:10], topic[0][10:], topic[1]):
        worker.ingest(0 if records is not topic[1] else 1, records)
    sent = worker.publish(held={0})
    keys = [record.key for record in group.topic]
    assert sent == len(keys) == len(set(keys)), "one record per changed partial"
    assert all(key is not None and key.startswith(b"0:") for key in keys)
    group.read = len(group.topic)
    assert worker.publish(held={0, 1}) == 0, "partition 1's were dropped with the last call"
