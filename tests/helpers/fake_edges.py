"""In-memory stand-ins for the consumer loop's edges, for tests/unit/test_loop.py: Kafka
(partitions, positions, pause and seek as aiokafka has them), the transactional writer, the
partition claims, the decider, the pause switch and the database probe; `make_rig` wires them
into a real `ConsumerLoop`, `run_until` runs it until a condition holds."""

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiokafka.structs import ConsumerRecord, TopicPartition
from prometheus_client import CollectorRegistry

from consumers.commit import Committer
from consumers.holding import Holding
from consumers.loop import ConsumerLoop
from consumers.metrics import ConsumerMetrics
from consumers.outcomes import InboundRecord, OutboundRecord, refused_outcome
from consumers.repository import PartitionClaim
from consumers.results import Result
from consumers.screening import Refusal
from ops.runtime.pause_switch import ControlState
from schemas.events import PublishOutcome, Reason
from schemas.settings import Settings

TOPIC = "requests"
TP0, TP1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)


def consumer_record(
    tp: TopicPartition,
    offset: int,
    *,
    key: bytes | None = b"k",
    value: bytes | None = b"{}",
    headers: Sequence[tuple[str, bytes]] = (),
    timestamp_ms: int | None = None,
) -> ConsumerRecord[bytes, bytes]:
    """A record as aiokafka hands it over, at `offset` of `tp`."""
    return ConsumerRecord(
        topic=tp.topic,
        partition=tp.partition,
        offset=offset,
        timestamp=int(time.time() * 1000) if timestamp_ms is None else timestamp_ms,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key or b""),
        serialized_value_size=len(value or b""),
        headers=list(headers),
    )


class FakeKafka:
    """Partitions of records, a position per partition, pause and seek as aiokafka has them."""

    def __init__(self, records_per_partition: int) -> None:
        self.log = {
            tp: [consumer_record(tp, offset) for offset in range(records_per_partition)]
            for tp in (TP0, TP1)
        }
        self.position = dict.fromkeys(self.log, 0)
        self.paused: set[TopicPartition] = set()

    def assignment(self) -> Set[TopicPartition]:
        return set(self.log)

    def pause(self, *partitions: TopicPartition) -> None:
        self.paused.update(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self.paused.difference_update(partitions)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.position[partition] = offset

    def last_stable_offset(self, tp: TopicPartition) -> int | None:
        return len(self.log[tp])

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        batches = {}
        for tp, records in self.log.items():
            start = self.position[tp]
            if tp in self.paused or start >= len(records):
                continue
            batches[tp] = records[start : start + (max_records or len(records))]
            self.position[tp] = start + len(batches[tp])
        if not batches:
            await asyncio.sleep(timeout_ms / 1000 / 20)
        return batches


@dataclass
class FakeWriter:
    """Commits what it is given; `failures` commits fail first, `hang` never returns."""

    failures: int = 0
    hang: bool = False
    delay_s: float = 0.0
    spans: list[tuple[float, float]] = field(default_factory=list)
    commits: list[tuple[list[OutboundRecord], dict[TopicPartition, int]]] = field(
        default_factory=list
    )
    attempts: int = 0

    async def commit(
        self, records: Sequence[OutboundRecord], offsets: Mapping[TopicPartition, int]
    ) -> None:
        self.attempts += 1
        began = time.monotonic()
        if self.hang:
            await asyncio.Event().wait()
        await asyncio.sleep(self.delay_s)
        self.spans.append((began, time.monotonic()))
        if self.failures:
            self.failures -= 1
            raise RuntimeError("transaction aborted")
        self.commits.append((list(records), dict(offsets)))


class FakeClaims:
    def __init__(self, writer: FakeWriter) -> None:
        self._writer = writer
        self.next: dict[TopicPartition, int] = {}
        self.writers_replaced = 0

    @property
    def partitions(self) -> list[int]:
        return [0, 1]

    def claim_for(self, tp: TopicPartition, first_offset: int) -> PartitionClaim | None:
        return PartitionClaim("group", tp.topic, tp.partition, epoch=1)

    def drop(self, tp: TopicPartition) -> None:
        self.next.pop(tp, None)

    def expect_next(self, tp: TopicPartition, offset: int) -> None:
        self.next[tp] = offset

    def next_offset(self, tp: TopicPartition) -> int | None:
        return self.next.get(tp)

    async def writer(self) -> FakeWriter:
        return self._writer

    async def replace_writer(self, wait_s: float = 30) -> None:
        self.writers_replaced += 1


class FakeDecider:
    """Decides every record (a refusal is the simplest pure outcome); raises the scripted
    errors first, one per call."""

    def __init__(
        self,
        errors: Sequence[BaseException] = (),
        together_errors: Sequence[BaseException] = (),
    ) -> None:
        self.errors = list(errors)
        self.together_errors = list(together_errors)
        self.calls = 0
        self.together_calls = 0
        self.times: list[float] = []

    async def handle_together(
        self, batches: Sequence[tuple[Sequence[InboundRecord], PartitionClaim]]
    ) -> list[list[Result]]:
        self.together_calls += 1
        if self.together_errors:
            raise self.together_errors.pop(0)
        return [self._refused(records) for records, _ in batches]

    async def handle(self, records: Sequence[InboundRecord], claim: PartitionClaim) -> list[Result]:
        self.calls += 1
        self.times.append(time.monotonic())
        if self.errors:
            raise self.errors.pop(0)
        return self._refused(records)

    def _refused(self, records: Sequence[InboundRecord]) -> list[Result]:
        now = datetime.now(UTC)
        results = []
        for record in records:
            outcome = refused_outcome(record, Refusal(Reason.INVALID_PAYLOAD, "test"), now)
            results.append(Result(record, outcome, outcome.model_dump_json(), None))
        return results


@dataclass
class Switch:
    paused: bool = False
    unreadable: BaseException | None = None

    async def read(self) -> ControlState:
        if self.unreadable is not None:
            raise self.unreadable
        return ControlState(self.paused, "on-call" if self.paused else None, "test", _now())


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Probe:
    down_for: int = 0  # probes that fail before the database answers
    made: int = 0

    async def __call__(self) -> None:
        self.made += 1
        if self.made <= self.down_for:
            raise ConnectionRefusedError(111, "refused")


async def _reconnect() -> None:
    return None


@dataclass
class Rig:
    kafka: FakeKafka
    writer: FakeWriter
    claims: FakeClaims
    decider: FakeDecider
    switch: Switch
    probe: Probe
    holding: Holding
    loop: ConsumerLoop
    registry: CollectorRegistry

    def committed_outcomes(self) -> list[PublishOutcome]:
        return [
            PublishOutcome.model_validate_json(record.value or b"")
            for records, _ in self.writer.commits
            for record in records
            if record.topic == "outcomes"
        ]

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


def make_rig(
    *,
    records: int = 5,
    max_batch: int = 100,
    writer: FakeWriter | None = None,
    decider: FakeDecider | None = None,
    switch: Switch | None = None,
    probe: Probe | None = None,
    together_max: int = 0,
    commit_interval_ms: int = 0,
) -> Rig:
    settings = Settings(
        _env_file=None,
        topic_outcomes="outcomes",
        topic_dlq="dlq",
        pause_poll_interval_ms=20,
        db_outage_max_backoff_ms=40,
        consumer_max_batch=max_batch,
        consumer_poll_transaction_max_records=together_max,
        consumer_commit_interval_ms=commit_interval_ms,
    )
    kafka = FakeKafka(records)
    writer = writer or FakeWriter()
    claims = FakeClaims(writer)
    decider = decider or FakeDecider()
    switch = switch or Switch()
    probe = probe or Probe()
    registry = CollectorRegistry()
    metrics = ConsumerMetrics.create(registry)
    holding = Holding(settings, kafka, switch.read, probe, _reconnect, metrics)
    committer = Committer(settings, kafka, claims, decider)
    loop = ConsumerLoop(settings, kafka, committer, holding, claims, metrics)
    return Rig(kafka, writer, claims, decider, switch, probe, holding, loop, registry)


async def run_until(
    rig: Rig, done: Callable[[], bool], *, then: Callable[[], Awaitable[None]] | None = None
) -> float:
    """Run the loop until `done()`, stop it, and return how long stopping took."""
    stop = asyncio.Event()
    task = asyncio.create_task(rig.loop.run(stop))
    deadline = time.monotonic() + 10
    while not done():
        assert time.monotonic() < deadline, "the loop did not get there in 10 s"
        assert not task.done(), f"the loop ended early: {task.exception()!r}"
        await asyncio.sleep(0.005)
    if then is not None:
        await then()
    stopped = time.monotonic()
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    return time.monotonic() - stopped


def committed_offsets(rig: Rig) -> dict[TopicPartition, int]:
    """The offsets committed to Kafka so far, per partition."""
    return {tp: offset for _, offsets in rig.writer.commits for tp, offset in offsets.items()}


def all_committed(rig: Rig) -> Callable[[], bool]:
    return lambda: committed_offsets(rig) == {TP0: 5, TP1: 5}
