"""The consumer loop with in-memory stand-ins for its Kafka and database edges
(tests/helpers/fake_edges.py): every record committed once with its offsets; faults of the
database hold the partitions and fail nothing; a failed commit is redone; the pause switch
holds everything; SIGTERM ends a hanging poll within its grace. The real edges are exercised
by the integration and fault tests."""

from __future__ import annotations

import asyncio
import itertools

import asyncpg
import pytest
from aiokafka.structs import TopicPartition
from structlog.testing import capture_logs

from consumers import loop as loop_module
from consumers.errors import DatabaseFault, DatabaseUnavailable, DecideSeparately
from schemas.events import Status
from tests.helpers.fake_edges import (
    TP0,
    TP1,
    FakeDecider,
    FakeWriter,
    Probe,
    Rig,
    Switch,
    all_committed,
    committed_offsets,
    make_rig,
    run_until,
)


async def test_every_record_is_committed_once_with_the_offsets_after_it() -> None:
    rig = make_rig()
    await run_until(rig, all_committed(rig))
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
    rig = make_rig(decider=FakeDecider([fault, fault, fault]))
    seen_health: list[dict[str, object]] = []

    def held_then_done() -> bool:
        ok, details = rig.loop.health()
        if not ok:
            seen_health.append(details)
        return committed_offsets(rig) == {TP0: 5, TP1: 5}

    await run_until(rig, held_then_done)
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
    rig = make_rig(
        decider=FakeDecider([DatabaseUnavailable("connection refused")]), probe=Probe(down_for=3)
    )
    await run_until(rig, all_committed(rig))
    assert rig.probe.made == 4
    assert len(rig.committed_outcomes()) == 10
    assert rig.kafka.paused == set()


async def test_a_failed_kafka_commit_hands_the_poll_back_and_it_is_committed_once_after() -> None:
    rig = make_rig(writer=FakeWriter(failures=1))
    with capture_logs() as logs:
        await run_until(rig, all_committed(rig))
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
    rig = make_rig(switch=Switch(paused=True))

    async def resume() -> None:
        await asyncio.sleep(0.2)
        assert rig.decider.calls == 0, "a batch was decided while paused"
        assert rig.kafka.paused == {TP0, TP1}
        rig.switch.paused = False

    stop_after = asyncio.Event()

    def resumed_and_done() -> bool:
        return stop_after.is_set() and committed_offsets(rig) == {TP0: 5, TP1: 5}

    async def flip() -> None:
        await resume()
        stop_after.set()

    flipper = asyncio.create_task(flip())
    await run_until(rig, resumed_and_done)
    await flipper
    assert len(rig.committed_outcomes()) == 10


async def test_a_switch_that_cannot_be_read_holds_publishing_back() -> None:
    rig = make_rig(
        switch=Switch(unreadable=asyncpg.exceptions.InsufficientPrivilegeError("denied"))
    )

    async def let_it_be_read() -> None:
        await asyncio.sleep(0.2)
        assert rig.decider.calls == 0
        assert not rig.loop.health()[0]
        rig.switch.unreadable = None

    flipper = asyncio.create_task(let_it_be_read())
    await run_until(rig, lambda: flipper.done() and committed_offsets(rig) == {TP0: 5, TP1: 5})
    assert len(rig.committed_outcomes()) == 10


async def test_an_unexpected_error_of_our_own_holds_back_instead_of_failing_requests() -> None:
    rig = make_rig(decider=FakeDecider([TypeError("a bug")]))
    await run_until(rig, all_committed(rig))
    outcomes = rig.committed_outcomes()
    assert len(outcomes) == 10
    assert all(o.status is not Status.FAILED for o in outcomes)
    assert rig.metric("store_publish_database_faults_total", sqlstate="none") == 1


async def test_stop_during_a_hanging_commit_hands_the_poll_back_within_the_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(loop_module, "SHUTDOWN_GRACE_S", 0.3)
    rig = make_rig(writer=FakeWriter(hang=True))
    took = await run_until(rig, lambda: rig.writer.attempts == 1)
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
    rig = make_rig(records=10, max_batch=2, writer=FakeWriter(delay_s=0.05))
    await run_until(rig, lambda: committed_offsets(rig) == {TP0: 10, TP1: 10})
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
    rig = make_rig(records=10, max_batch=2, writer=FakeWriter(failures=1, delay_s=0.02))
    await run_until(rig, lambda: committed_offsets(rig) == {TP0: 10, TP1: 10})
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
    rig = make_rig(max_batch=2)
    await run_until(rig, all_committed(rig))
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
    assert committed_offsets(rig) == {TP0: 5, TP1: 5}


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
    rig = make_rig(together_max=together_max, decider=FakeDecider(together_errors=together_errors))
    await run_until(rig, all_committed(rig))
    _each_committed_once(rig)
    assert rig.decider.together_calls == together_calls
    assert rig.decider.calls == alone_calls


async def test_a_database_fault_in_the_one_transaction_hands_back_every_partition() -> None:
    fault = DatabaseFault(asyncpg.exceptions.UndefinedColumnError("column does not exist"))
    rig = make_rig(together_max=10, decider=FakeDecider(together_errors=[fault, fault]))
    await run_until(rig, all_committed(rig))
    # Both partitions went back and waited; then each record was committed exactly once.
    _each_committed_once(rig)
    assert rig.decider.together_calls == 3
    # Counted once per poll handed back, not once per partition.
    assert rig.metric("store_publish_database_faults_total", sqlstate="42703") == 2
    assert all(o.status is not Status.FAILED for o in rig.committed_outcomes())
