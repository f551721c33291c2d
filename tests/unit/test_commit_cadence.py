"""The commit cadence (CONSUMER_COMMIT_INTERVAL_MS): at low rates a Kafka transaction is not
started more often than the interval, so each carries more records; a full poll (a backlog)
does not wait. Counted from the poll-step metric, as an operator would."""

from __future__ import annotations

import asyncio
import time

from consumers.kafka_io import requests_reader
from schemas.settings import Settings
from tests.helpers.fake_edges import TP0, Rig, consumer_record, make_rig, run_until

COMMITS = "store_publish_consumer_poll_step_seconds_count"


async def _trickle(rig: Rig, count: int, every_s: float) -> None:
    """`count` records arrive on one partition, one every `every_s`."""
    log = rig.kafka.log[TP0]
    for _ in range(count):
        await asyncio.sleep(every_s)
        log.append(consumer_record(TP0, len(log)))


async def _transactions_while_trickling(commit_interval_ms: int) -> tuple[float, int]:
    """Kafka transactions, and records committed, for 120 records arriving at ~200/s."""
    rig = make_rig(records=0, commit_interval_ms=commit_interval_ms)
    trickling = asyncio.create_task(_trickle(rig, 120, 0.005))
    await run_until(rig, lambda: len(rig.committed_outcomes()) == 120)
    await trickling
    return rig.metric(COMMITS, step="commit"), len(rig.committed_outcomes())


async def test_at_a_low_rate_transactions_follow_the_cadence_not_the_records() -> None:
    began = time.monotonic()
    with_cadence, committed = await _transactions_while_trickling(100)
    seconds = time.monotonic() - began
    without, _ = await _transactions_while_trickling(0)
    assert committed == 120
    # At most one transaction per 100 ms (one more for the first, taken at once) ...
    assert 1 <= with_cadence <= seconds / 0.1 + 2
    # ... where a poll per arrival makes many more for the same records.
    assert without >= 3 * with_cadence


async def test_full_polls_do_not_wait_for_the_cadence() -> None:
    # 1,000 records waiting, full polls (the stand-in takes up to 100 a partition from each
    # of two): with a one-second cadence between them, five polls would take four seconds.
    rig = make_rig(records=500, max_batch=100, commit_interval_ms=1000)
    began = time.monotonic()
    await run_until(rig, lambda: len(rig.committed_outcomes()) == 1000)
    assert time.monotonic() - began < 1.0
    assert rig.metric(COMMITS, step="commit") >= 5


async def test_the_reader_asks_the_broker_to_hold_its_fetch_for_the_cadence() -> None:
    """aiokafka does not fetch a partition whose records wait in its buffer: answered at its
    first record, a fetch would leave the rest of the interval's records for the poll after
    next. Held for the interval (or a backlog's bytes), it brings them all to the next poll."""
    paced = requests_reader(Settings(_env_file=None, consumer_commit_interval_ms=100))
    assert paced._fetch_max_wait_ms == 100
    assert paced._fetch_min_bytes == 256 * 1024
    # No cadence, no holding: aiokafka's defaults answer at the first record.
    unpaced = requests_reader(Settings(_env_file=None, consumer_commit_interval_ms=0))
    assert (unpaced._fetch_max_wait_ms, unpaced._fetch_min_bytes) == (500, 1)
