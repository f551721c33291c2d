"""The rates stream against the real broker and database: alerts fire and resolve on a
scripted outcome sequence, tiny windows stay quiet, a restarted worker keeps its counts,
aborted outcomes are not counted, and the rollback alert pauses publishing."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import NodeNotReadyError
from aiokafka.structs import TopicPartition
from prometheus_client import CollectorRegistry

from ops.dev.processes import CliProcess
from ops.runtime.pause_switch import read_control
from ops.runtime.topics import ensure_topics
from schemas.events import Alert, AlertState, Status
from streams.alerts import (
    AUTO_ROLLBACK,
    HIGH_ERROR_RATE,
    HIGH_GATING_BLOCK_RATE,
    HIGH_RETRY_RATE,
    SLOW_RESPONSE,
)
from streams.app import run_stream
from streams.faust_app import FaustRates, StreamCrashed
from streams.folding import Folder
from tests.fixtures.settings import MakeSettings
from tests.helpers.stream import (
    fast,
    free_port,
    metric,
    outcome,
    read_alerts,
    send_outcomes,
)
from tests.helpers.support import producer_for, running_stream


async def wait_for_gauge(
    registry: CollectorRegistry, name: str, expected: float, wait_s: float = 30.0
) -> float | None:
    deadline = time.monotonic() + wait_s
    value = registry.get_sample_value(name)
    while time.monotonic() < deadline:
        value = registry.get_sample_value(name)
        if value == expected:
            return value
        await asyncio.sleep(0.1)
    return value


async def test_a_scripted_degradation_fires_every_alert_then_resolves_it(
    make_settings: MakeSettings, database_url: str
) -> None:
    settings = fast(make_settings)
    await ensure_topics(settings)
    # Degraded: 30% failed, 60% gated, 40% retried, p95 15 s. Then healthy.
    degraded = [
        *(outcome(Status.FAILED, attempts=3, latency_ms=15_000.0) for _ in range(3)),
        *(outcome(Status.GATED, latency_ms=15_000.0) for _ in range(6)),
        outcome(Status.PUBLISHED, attempts=2, latency_ms=15_000.0),
    ]
    started_at = time.monotonic()
    async with running_stream(settings), producer_for(settings) as producer:
        started_at, degraded_from = time.monotonic(), datetime.now(UTC)
        while time.monotonic() - started_at < 3.0:
            await send_outcomes(
                producer,
                settings,
                *(
                    o.model_copy(
                        update={"event_id": uuid.uuid4(), "processed_at": datetime.now(UTC)}
                    )
                    for o in degraded
                ),
            )
            await asyncio.sleep(0.1)
        healthy_from = datetime.now(UTC)
        while time.monotonic() - started_at < 9.0:
            await send_outcomes(producer, settings, *(outcome(Status.PUBLISHED) for _ in range(10)))
            await asyncio.sleep(0.1)
        records = await read_alerts(settings, expect=10, wait_s=20)
    alerts = [Alert.model_validate_json(r.value or b"") for r in records]
    assert all(r.key == a.alert.encode() for r, a in zip(records, alerts, strict=True))
    alerts.sort(key=lambda a: a.evaluated_at)
    healthy_at = (healthy_from - degraded_from).total_seconds()
    print(f"\nalert timeline (degraded from +0.00s, healthy from +{healthy_at:.2f}s):")
    for a in alerts:
        at = (a.evaluated_at - degraded_from).total_seconds()
        line = f"{a.alert:38} {a.state.value:8} value={a.value:.4g} threshold={a.threshold:g}"
        print(f"  +{at:5.2f}s {line}")
    by_rule: dict[str, list[Alert]] = {}
    for a in alerts:
        by_rule.setdefault(a.alert, []).append(a)
    rules = {HIGH_ERROR_RATE, SLOW_RESPONSE, HIGH_RETRY_RATE, HIGH_GATING_BLOCK_RATE, AUTO_ROLLBACK}
    assert set(by_rule) == rules
    for name, episode in by_rule.items():
        assert [a.state for a in episode] == [AlertState.FIRING, AlertState.RESOLVED], name
        fired, resolved = episode
        assert fired.value > fired.threshold, name
        assert resolved.value <= resolved.threshold, name
        assert fired.window_start < fired.window_end == fired.evaluated_at
        # Not before the condition held for its duration; resolved only once traffic recovered.
        assert (fired.evaluated_at - degraded_from).total_seconds() >= fired.for_seconds, name
        assert fired.evaluated_at < healthy_from < resolved.evaluated_at, name
    assert by_rule[SLOW_RESPONSE][0].value == pytest.approx(15_000.0, rel=0.02)
    assert by_rule[HIGH_GATING_BLOCK_RATE][0].value == pytest.approx(0.6, abs=0.01)
    assert by_rule[HIGH_ERROR_RATE][0].value == pytest.approx(0.3, abs=0.01)
    assert by_rule[HIGH_RETRY_RATE][0].value == pytest.approx(0.4, abs=0.01)

    pool = await asyncpg.create_pool(settings.dsn(), min_size=1, max_size=1)
    try:
        control = await read_control(pool)
    finally:
        await pool.close()
    # Paused by the rollback alert, and still paused after it resolved: only a person resumes.
    assert control.paused
    assert control.changed_by == f"alert:{AUTO_ROLLBACK}"
    assert control.reason is not None
    assert control.reason.startswith(f"{AUTO_ROLLBACK}: failed/all")


async def test_no_alert_on_a_window_with_too_few_outcomes(
    make_settings: MakeSettings, database_url: str
) -> None:
    settings = fast(make_settings, alert_min_events=50)
    await ensure_topics(settings)
    registry = CollectorRegistry()
    async with running_stream(settings, registry), producer_for(settings) as producer:
        await send_outcomes(
            producer,
            settings,
            *(outcome(Status.FAILED, attempts=3, latency_ms=60_000.0) for _ in range(20)),
        )
        assert await wait_for_gauge(registry, "store_publish_window_outcomes", 20) == 20
        await asyncio.sleep(2.0)
        records = await read_alerts(settings, expect=1, wait_s=1)
    assert records == []
    assert registry.get_sample_value("store_publish_alert_firing", {"alert": HIGH_ERROR_RATE}) == 0


async def test_a_restarted_worker_resumes_with_its_counts(
    make_settings: MakeSettings, database_url: str
) -> None:
    settings = fast(make_settings, alert_window_seconds=120.0, alert_min_events=1000)
    await ensure_topics(settings)
    async with producer_for(settings) as producer:
        await send_outcomes(
            producer,
            settings,
            *(outcome(Status.FAILED) for _ in range(10)),
            *(outcome(Status.PUBLISHED) for _ in range(20)),
        )
        first = CollectorRegistry()
        async with running_stream(settings, first):
            assert await wait_for_gauge(first, "store_publish_window_outcomes", 30) == 30
        await send_outcomes(producer, settings, *(outcome(Status.PUBLISHED) for _ in range(10)))
    second = CollectorRegistry()
    async with running_stream(settings, second):
        assert await wait_for_gauge(second, "store_publish_window_outcomes", 40) == 40
        await asyncio.sleep(1.0)
        assert second.get_sample_value("store_publish_window_outcomes") == 40
        # The first 30 came back from the changelog: this worker folded only the 10 new ones.
        assert second.get_sample_value("store_publish_stream_outcomes_total") == 10
        assert second.get_sample_value("store_publish_rate_error_ratio") == pytest.approx(0.25)


async def test_outcomes_of_an_aborted_transaction_are_not_counted(
    make_settings: MakeSettings, database_url: str
) -> None:
    settings = fast(make_settings, alert_window_seconds=120.0)
    await ensure_topics(settings)
    async with producer_for(settings, transactional=True) as transactional:
        async with transactional.transaction():
            await send_outcomes(
                transactional, settings, *(outcome(Status.FAILED) for _ in range(7))
            )
        await transactional.begin_transaction()
        await send_outcomes(transactional, settings, *(outcome(Status.FAILED) for _ in range(5)))
        await transactional.abort_transaction()
    registry = CollectorRegistry()
    async with running_stream(settings, registry):
        assert await wait_for_gauge(registry, "store_publish_window_outcomes", 7) == 7
        await asyncio.sleep(1.0)
        assert registry.get_sample_value("store_publish_window_outcomes") == 7


async def test_committed_offsets_keep_up_with_many_small_transactions(
    make_settings: MakeSettings, database_url: str
) -> None:
    """Every transaction leaves a commit marker, a gap in the offsets the stream reads; its
    committed offsets must still reach the end, not one transaction per commit interval."""
    settings = fast(make_settings, alert_window_seconds=120.0, topic_partitions=1)
    await ensure_topics(settings)
    transactions = 120
    registry = CollectorRegistry()
    async with running_stream(settings, registry):
        async with producer_for(settings, transactional=True) as transactional:
            for _ in range(transactions):
                async with transactional.transaction():
                    await send_outcomes(transactional, settings, outcome(Status.PUBLISHED))
        assert await wait_for_gauge(registry, "store_publish_window_outcomes", transactions) == (
            transactions
        )
        # Record n is at offset 2n, its marker at 2n + 1: all read means committed 2n - 1.
        last_record = 2 * transactions - 2
        tp = TopicPartition(settings.topic_outcomes, 0)
        admin = AIOKafkaAdminClient(**settings.kafka_client_options())
        await admin.start()
        try:
            committed = -1
            deadline = time.monotonic() + 15
            while committed <= last_record and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
                offsets = await admin.list_consumer_group_offsets(
                    f"{settings.consumer_group}-rates", partitions=[tp]
                )
                committed = offsets[tp].offset if tp in offsets else -1
        finally:
            await admin.close()
    # faust's own accounting advanced one transaction per one-second commit: some 15 here.
    assert committed == last_record + 1


async def test_a_backlog_across_partitions_is_counted_once_and_committed_to_its_end(
    make_settings: MakeSettings, database_url: str
) -> None:
    """Whole fetches of a backlog: every outcome counted once, the committed offsets of every
    partition at its end, and a restart over the same backlog counts nothing again."""
    settings = fast(make_settings, alert_window_seconds=300.0, alert_min_events=100_000)
    await ensure_topics(settings)
    backlog = 6_000
    async with producer_for(settings) as producer:
        items = [outcome(Status.PUBLISHED) for _ in range(backlog)]
        await send_outcomes(producer, settings, *items)
    first = CollectorRegistry()
    async with running_stream(settings, first):
        counted = await wait_for_gauge(first, "store_publish_stream_outcomes_total", backlog, 60)
        assert counted == backlog
        tps = [TopicPartition(settings.topic_outcomes, p) for p in range(settings.topic_partitions)]
        admin = AIOKafkaAdminClient(**settings.kafka_client_options())
        reader = AIOKafkaConsumer(**settings.kafka_client_options())
        await admin.start()
        await reader.start()
        try:
            ends = await reader.end_offsets(tps)
            committed: dict[TopicPartition, int] = {}
            deadline = time.monotonic() + 15
            while committed != ends and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
                offsets = await admin.list_consumer_group_offsets(
                    f"{settings.consumer_group}-rates", partitions=tps
                )
                committed = {tp: offsets[tp].offset for tp in tps if tp in offsets}
        finally:
            await reader.stop()
            await admin.close()
        print(f"\ncommitted {sum(committed.values()):,} of {sum(ends.values()):,} offsets")
        assert committed == ends
        assert first.get_sample_value("store_publish_window_outcomes") == backlog
    second = CollectorRegistry()
    async with running_stream(settings, second):
        assert await wait_for_gauge(second, "store_publish_window_outcomes", backlog) == backlog
        await asyncio.sleep(1.0)
        assert second.get_sample_value("store_publish_stream_outcomes_total") == 0


async def test_a_bug_in_the_fold_stops_the_stream_crashed_without_committing_past_it(
    make_settings: MakeSettings, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = fast(make_settings, topic_partitions=1)
    await ensure_topics(settings)

    def broken(self: Folder, partition: int, records: object) -> None:
        raise RuntimeError("a bug in the fold")

    monkeypatch.setattr(Folder, "ingest", broken)
    stop, started = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_stream(settings, stop=stop, started=started))
    try:
        await asyncio.wait_for(started.wait(), timeout=60)
        async with producer_for(settings) as producer:
            await send_outcomes(producer, settings, *(outcome(Status.PUBLISHED) for _ in range(3)))
        with pytest.raises(StreamCrashed, match="a bug in the fold"):
            await asyncio.wait_for(task, timeout=60)
    finally:
        stop.set()
        if not task.done():
            await asyncio.wait_for(task, timeout=60)
    tp = TopicPartition(settings.topic_outcomes, 0)
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(
            f"{settings.consumer_group}-rates", partitions=[tp]
        )
    finally:
        await admin.close()
    # Nothing folded, nothing committed: the next start reads the three outcomes again.
    assert tp not in offsets or offsets[tp].offset <= 0


# The restart waits out the killed member's session (faust's 60 s) before it is assigned.
@pytest.mark.timeout(400)
async def test_a_stream_killed_mid_backlog_counts_every_outcome_once_after_restart(
    make_settings: MakeSettings, database_url: str, tmp_path: Path
) -> None:
    """SIGKILL while whole fetches are being folded: the next process recovers the slots from
    their changelog, reads again from the committed offsets, and its window holds every
    outcome exactly once."""
    settings = fast(
        make_settings,
        alert_window_seconds=300.0,
        alert_min_events=1_000_000,
        stream_http_port=free_port(),
    )
    await ensure_topics(settings)
    total = 30_000
    async with producer_for(settings) as producer:
        await send_outcomes(producer, settings, *(outcome(Status.PUBLISHED) for _ in range(total)))
    first = CliProcess("stream", settings, tmp_path / "first.log").start()
    try:
        counted_at_kill = 0.0
        deadline = time.monotonic() + 90
        while not counted_at_kill and time.monotonic() < deadline:
            assert first.poll() is None, (tmp_path / "first.log").read_text()[-2000:]
            counted_at_kill = await metric(settings, "store_publish_stream_outcomes_total") or 0
            await asyncio.sleep(0.05)
        first.kill()
    finally:
        first.stop(timeout=10)
    assert counted_at_kill > 0
    second = CliProcess("stream", settings, tmp_path / "second.log").start()
    try:
        window: float | None = None
        deadline = time.monotonic() + 240
        while window != total and time.monotonic() < deadline:
            assert second.poll() is None, (tmp_path / "second.log").read_text()[-2000:]
            window = await metric(settings, "store_publish_window_outcomes")
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.5)
        settled = await metric(settings, "store_publish_window_outcomes")
        refolded = await metric(settings, "store_publish_stream_outcomes_total")
    finally:
        second.stop(timeout=30)
    print(f"\nkilled after {counted_at_kill:,.0f} of {total:,}; the restart folded {refolded:,.0f}")
    assert window == total
    assert settled == total


async def test_a_start_cut_short_by_a_broker_going_away_starts_a_new_app(
    make_settings: MakeSettings, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """faust gives up on a node that went away while it started (NodeNotReadyError, found on
    the three-broker cluster); the stream starts a new app instead of exiting."""
    settings = fast(make_settings, alert_window_seconds=120.0, alert_min_events=1000)
    await ensure_topics(settings)
    start = FaustRates.start
    attempts: list[str] = []

    async def cut_short_once(self: FaustRates) -> None:
        attempts.append(self.app_id)
        if len(attempts) == 1:
            raise NodeNotReadyError("injected: the node went away while faust started")
        await start(self)

    monkeypatch.setattr(FaustRates, "start", cut_short_once)
    registry = CollectorRegistry()
    async with running_stream(settings, registry), producer_for(settings) as producer:
        await send_outcomes(producer, settings, *(outcome(Status.PUBLISHED) for _ in range(25)))
        assert await wait_for_gauge(registry, "store_publish_window_outcomes", 25) == 25
    assert len(attempts) == 2


async def test_at_a_low_rate_the_stream_folds_many_transactions_per_wake(
    make_settings: MakeSettings, database_url: str
) -> None:
    """A transaction of outcomes every 50 ms (the consumer's commit cadence at a low rate):
    the broker holds each fetch for more bytes up to STREAM_FETCH_MAX_WAIT_MS, so the stream
    wakes about twice a second, not twenty times, and still counts every outcome."""
    wait_ms = 500
    settings = fast(
        make_settings,
        topic_partitions=1,
        alert_window_seconds=60.0,
        alert_evaluate_interval_seconds=1.0,
        stream_fetch_max_wait_ms=wait_ms,
    )
    await ensure_topics(settings)
    transactions = 60
    registry = CollectorRegistry()
    async with running_stream(settings, registry):
        async with producer_for(settings, transactional=True) as transactional:
            began = time.monotonic()
            for index in range(transactions):
                async with transactional.transaction():
                    await send_outcomes(transactional, settings, outcome(Status.PUBLISHED))
                await asyncio.sleep(max(0.0, began + (index + 1) * 0.05 - time.monotonic()))
            span_s = time.monotonic() - began
        assert await wait_for_gauge(registry, "store_publish_window_outcomes", transactions) == (
            transactions
        )
        fetches = registry.get_sample_value("store_publish_stream_fetches_total")
    assert fetches is not None
    # One per held wait over the span, one for the first outcome, one for the tail.
    assert 1 <= fetches <= span_s / (wait_ms / 1000) + 2, (fetches, span_s)
