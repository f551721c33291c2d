"""The consumer loop with in-memory stand-ins for its Kafka and database edges: every record
committed once with its offsets; faults of the database hold the partitions and fail nothing;
a failed commit is redone; the pause switch holds everything; SIGTERM ends a hanging poll
within its grace. The real edges are exercised by the integration and fault tests."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
import pytest
from aiokafka.structs import ConsumerRecord, TopicPartition
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from consumers import loop as loop_module
from consumers.commit import Committer
from consumers.errors import DatabaseFault, DatabaseUnavailable, DecideSeparately
from consumers.holding import Holding
from consumers.loop import ConsumerLoop
from consumers.metrics import ConsumerMetrics
from consumers.outcomes import InboundRecord, OutboundRecord, refused_outcome
from consumers.repository import PartitionClaim
from consumers.results import Result
from consumers.screening import Refusal
from ops.runtime.pause_switch import ControlState
from schemas.events import PublishOutcome, Reason, Status
from schemas.settings import Settings

TOPIC = "requests"
TP0, TP1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)


def _record(tp: TopicPartition, offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=tp.topic,
        partition=tp.partition,
        offset=offset,
        timestamp=int(time.time() * 1000),
        timestamp_type=0,
        key=b"k",
        value=b"{}",
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=2,
        headers=[],
    )


class FakeKafka:
    """Partitions of records, a position per partition, pause and seek as aiokafka has them."""

    def __init__(self, records_per_partition: int) -> None:
        self.log = {
            tp: [_record(tp, offset) for offset in range(records_per_partition)]
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


def _rig(
    *,
    records: int = 5,
    max_batch: int = 100,
    writer: FakeWriter | None = None,
    decider: FakeDecider | None = None,
    switch: Switch | None = None,
    probe: Probe | None = None,
    together_max: int = 0,
) -> Rig:
    settings = Settings(
        _env_file=None,
        topic_outcomes="outcomes",
        topic_dlq="dlq",
        pause_poll_interval_ms=20,
        db_outage_max_backoff_ms=40,
        consumer_max_batch=max_batch,
        consumer_poll_transaction_max_records=together_max,
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


async def _run_until(
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


def _committed(rig: Rig) -> dict[TopicPartition, int]:
    """The offsets committed to Kafka so far, per partition."""
    return {tp: offset for _, offsets in rig.writer.commits for tp, offset in offsets.items()}


def _all_committed(rig: Rig) -> Callable[[], bool]:
    return lambda: _committed(rig) == {TP0: 5, TP1: 5}


async def test_every_record_is_committed_once_with_the_offsets_after_it() -> None:
    rig = _rig()
    await _run_until(rig, _all_committed(rig))
    outcomes = rig.committed_outcomes()
    assert len(outcomes) == 10
    assert len({o.event_id for o in outcomes}) == 10
    assert {tp: offset for _, offsets in rig.writer.commits for tp, offset in offsets.items()} == {
        TP0: 5,
        TP1: 5,
    }
    assert rig.loop.processed == 10
    assert rig.metric("store_publish_outcomes_total", status="rejected", reason="invalid_payload")


async def test_a_database_fault_holds_the_partitions_fails_nothing_and_carries_on_after() -> None:
    fault = DatabaseFault(asyncpg.exceptions.UndefinedColumnError("column does not exist"))
    rig = _rig(decider=FakeDecider([fault, fault, fault]))
    seen_health: list[dict[str, object]] = []

    def held_then_done() -> bool:
        ok, details = rig.loop.health()
        if not ok:
            seen_health.append(details)
        return _committed(rig) == {TP0: 5, TP1: 5}

    await _run_until(rig, held_then_done)
    # Nothing was committed while the fault lasted; afterwards each record exactly once.
    outcomes = rig.committed_outcomes()
    assert len(outcomes) == 10
    assert all(o.status is not Status.FAILED for o in outcomes)
    assert seen_health, "/health never said the database was at fault"
    assert seen_health[0]["database"] == "fault"
    assert seen_health[0]["database_fault"]["sqlstate"] == "42703"  # type: ignore[index]
    assert rig.metric("store_publish_database_faults_total", sqlstate="42703") >= 1
    assert rig.loop.health()[0], "the fault was not cleared once a poll went through"
    assert rig.metric("store_publish_database_available") == 1


async def test_an_unreachable_database_is_probed_until_it_answers_then_carries_on() -> None:
    rig = _rig(
        decider=FakeDecider([DatabaseUnavailable("connection refused")]), probe=Probe(down_for=3)
    )
    await _run_until(rig, _all_committed(rig))
    assert rig.probe.made == 4
    assert len(rig.committed_outcomes()) == 10
    assert rig.kafka.paused == set()


async def test_a_failed_kafka_commit_hands_the_poll_back_and_it_is_committed_once_after() -> None:
    rig = _rig(writer=FakeWriter(failures=1))
    with capture_logs() as logs:
        await _run_until(rig, _all_committed(rig))
    assert rig.writer.attempts == 2
    assert rig.claims.writers_replaced == 1
    assert len(rig.committed_outcomes()) == 10
    # The runbook's line of each request once, for its committed outcome: none for the
    # poll handed back.
    rejected = [line for line in logs if line["event"] == "Request rejected"]
    assert sorted((line["partition"], line["offset"]) for line in rejected) == [
        (tp.partition, offset) for tp in (TP0, TP1) for offset in range(5)
    ]
    assert {line["reason"] for line in rejected} == {"invalid_payload"}
    assert {line["correlationId"] for line in rejected} == {
        o.correlation_id for o in rig.committed_outcomes()
    }


async def test_the_pause_switch_holds_every_partition_until_resumed() -> None:
    rig = _rig(switch=Switch(paused=True))

    async def resume() -> None:
        await asyncio.sleep(0.2)
        assert rig.decider.calls == 0, "a batch was decided while paused"
        assert rig.kafka.paused == {TP0, TP1}
        rig.switch.paused = False

    stop_after = asyncio.Event()

    def resumed_and_done() -> bool:
        return stop_after.is_set() and _committed(rig) == {TP0: 5, TP1: 5}

    async def flip() -> None:
        await resume()
        stop_after.set()

    flipper = asyncio.create_task(flip())
    await _run_until(rig, resumed_and_done)
    await flipper
    assert len(rig.committed_outcomes()) == 10


async def test_a_switch_that_cannot_be_read_holds_publishing_back() -> None:
    rig = _rig(switch=Switch(unreadable=asyncpg.exceptions.InsufficientPrivilegeError("denied")))

    async def let_it_be_read() -> None:
        await asyncio.sleep(0.2)
        assert rig.decider.calls == 0
        assert not rig.loop.health()[0]
        rig.switch.unreadable = None

    flipper = asyncio.create_task(let_it_be_read())
    await _run_until(rig, lambda: flipper.done() and _committed(rig) == {TP0: 5, TP1: 5})
    assert len(rig.committed_outcomes()) == 10


async def test_an_unexpected_error_of_our_own_holds_back_instead_of_failing_requests() -> None:
    rig = _rig(decider=FakeDecider([TypeError("a bug")]))
    await _run_until(rig, _all_committed(rig))
    outcomes = rig.committed_outcomes()
    assert len(outcomes) == 10
    assert all(o.status is not Status.FAILED for o in outcomes)
    assert rig.metric("store_publish_database_faults_total", sqlstate="none") == 1


async def test_stop_during_a_hanging_commit_hands_the_poll_back_within_the_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(loop_module, "SHUTDOWN_GRACE_S", 0.3)
    rig = _rig(writer=FakeWriter(hang=True))
    took = await _run_until(rig, lambda: rig.writer.attempts == 1)
    assert took < 2.0
    assert rig.writer.commits == []
    # Handed back: the next owner reads the poll again from its first offset.
    assert rig.kafka.position == {TP0: 0, TP1: 0}


def _per_partition_commits(rig: Rig) -> dict[TopicPartition, list[int]]:
    seen: dict[TopicPartition, list[int]] = {}
    for _, offsets in rig.writer.commits:
        for tp, offset in offsets.items():
            seen.setdefault(tp, []).append(offset)
    return seen


async def test_the_next_poll_is_decided_while_the_previous_one_commits() -> None:
    rig = _rig(records=10, max_batch=2, writer=FakeWriter(delay_s=0.05))
    await _run_until(rig, lambda: _committed(rig) == {TP0: 10, TP1: 10})
    overlapped = [
        t for t in rig.decider.times for began, ended in rig.writer.spans if began < t < ended
    ]
    assert overlapped, "no poll was decided while a Kafka transaction was committing"
    # One transaction at a time, each beginning after the previous one returned.
    spans = sorted(rig.writer.spans)
    assert all(a_end <= b_begin for (_, a_end), (b_begin, _) in itertools.pairwise(spans))
    for offsets in _per_partition_commits(rig).values():
        assert offsets == sorted(offsets)
        assert len(set(offsets)) == len(offsets)


async def test_a_failed_commit_hands_back_its_poll_and_the_one_decided_after_it() -> None:
    rig = _rig(records=10, max_batch=2, writer=FakeWriter(failures=1, delay_s=0.02))
    await _run_until(rig, lambda: _committed(rig) == {TP0: 10, TP1: 10})
    outcomes = rig.committed_outcomes()
    # Every record exactly once (outcome ids come from the record's position here), and
    # each partition's offsets committed in order, none skipped.
    assert len(outcomes) == 20
    assert len({o.event_id for o in outcomes}) == 20
    for offsets in _per_partition_commits(rig).values():
        assert offsets == sorted(offsets)
        assert offsets[-1] == 10
    assert rig.claims.writers_replaced == 1


async def test_each_poll_times_its_decide_wait_and_commit_steps() -> None:
    rig = _rig(max_batch=2)
    await _run_until(rig, _all_committed(rig))
    step = "store_publish_consumer_poll_step_seconds_count"
    polls = rig.metric(step, step="decide")
    # Five records a partition, two a poll: at least three polls decided and committed.
    assert polls >= 3
    assert rig.metric(step, step="wait") == polls
    assert rig.metric(step, step="commit") == len(rig.writer.commits)
    assert rig.metric("store_publish_consumer_poll_step_seconds_sum", step="decide") > 0


def _each_committed_once(rig: Rig) -> None:
    outcomes = rig.committed_outcomes()
    assert len(outcomes) == 10
    assert len({o.event_id for o in outcomes}) == 10
    assert _committed(rig) == {TP0: 5, TP1: 5}


@pytest.mark.parametrize(
    ("together_max", "together_errors", "together_calls", "alone_calls"),
    [
        # Ten records, at most ten together: one transaction for both partitions.
        (10, [], 1, 0),
        # Over the limit: a transaction per partition, as for a large poll.
        (9, [], 0, 2),
        # The one transaction cannot go through: nothing of it is kept, and each partition
        # is decided once, on its own.
        (10, [DecideSeparately("lost")], 1, 2),
    ],
    ids=["together", "over-the-limit", "cannot-go-through-together"],
)
async def test_a_small_poll_is_decided_in_one_transaction_else_a_partition_at_a_time(
    together_max: int,
    together_errors: list[BaseException],
    together_calls: int,
    alone_calls: int,
) -> None:
    rig = _rig(together_max=together_max, decider=FakeDecider(together_errors=together_errors))
    await _run_until(rig, _all_committed(rig))
    _each_committed_once(rig)
    assert rig.decider.together_calls == together_calls
    assert rig.decider.calls == alone_calls


async def test_a_database_fault_in_the_one_transaction_hands_back_every_partition() -> None:
    fault = DatabaseFault(asyncpg.exceptions.UndefinedColumnError("column does not exist"))
    rig = _rig(together_max=10, decider=FakeDecider(together_errors=[fault, fault]))
    await _run_until(rig, _all_committed(rig))
    # Both partitions went back and waited; then each record was committed exactly once.
    _each_committed_once(rig)
    assert rig.decider.together_calls == 3
    # Counted once per poll handed back, not once per partition.
    assert rig.metric("store_publish_database_faults_total", sqlstate="42703") == 2
    assert all(o.status is not Status.FAILED for o in rig.committed_outcomes())
