"""The ledger on a short horizon, against the real database and the real consumer: a 2 s
interval and a 4 s retention, a steady stream of requests for several horizons. The rows stay
within what was sent over the retention plus one interval, none lands in the default
partition, the oldest requests' records go, and those requests replayed then publish nothing
twice."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from consumers.ledger import maintain_ledger, maintain_ledger_once, read_partitions
from schemas.events import Status
from tests.fixtures.creators import MakeCreators
from tests.fixtures.settings import MakeSettings, MakeSettingsWithTopics
from tests.helpers.support import (
    encode,
    outcomes_of,
    producer_for,
    read_outcomes,
    read_topic,
    request_body,
    running_consumer,
)

INTERVAL = timedelta(seconds=2)
RETENTION = timedelta(seconds=4)
RATE = 40  # requests per second
RUN_S = 20.0  # five horizons (retention + interval)
# Maintenance runs on the moment a partition passes the retention, then takes a few
# milliseconds; a request is recorded when decided, shortly after it was sent.
SLACK_S = 1.0


async def _counts(conn: asyncpg.Connection) -> tuple[int, int]:
    row = await conn.fetchrow(
        """SELECT count(*) AS total,
                  count(*) FILTER (WHERE tableoid = 'publish_requests_default'::regclass) AS dflt
             FROM publish_requests"""
    )
    assert row is not None
    return int(row["total"]), int(row["dflt"])


async def test_a_short_horizon_keeps_the_ledger_within_rate_times_retention_plus_interval(
    make_settings_with_topics: MakeSettingsWithTopics,
    database_url: str,
    make_creators: MakeCreators,
) -> None:
    settings = await make_settings_with_topics(
        idempotency_partition_interval=INTERVAL, idempotency_retention=RETENTION
    )
    creators = await make_creators(20)
    # What the first `store-publish migrate` does after the migrations: 0006's day
    # partitions give way to partitions of the interval.
    await maintain_ledger_once(settings)
    conn = await asyncpg.connect(database_url)
    try:
        now = datetime.now(UTC)
        partitions, _ = await read_partitions(conn)
        ahead = [p.bounds for p in partitions if p.bounds.hi is None or p.bounds.hi > now]
        assert ahead
        assert all(b.lo is not None and b.hi is not None for b in ahead)
        assert all(b.hi - b.lo <= INTERVAL for b in ahead if b.lo and b.hi)

        sent: list[tuple[float, bytes]] = []
        samples: list[tuple[float, int, int, int]] = []  # elapsed, rows, default, sent bound

        async def sample(started: float) -> None:
            while True:
                rows, default = await _counts(conn)
                at = time.time()
                window = (RETENTION + INTERVAL).total_seconds() + SLACK_S
                bound = sum(1 for sent_at, _ in sent if sent_at > at - window)
                samples.append((at - started, rows, default, bound))
                await asyncio.sleep(0.5)

        async with running_consumer(settings):
            async with producer_for(settings) as producer:
                started = time.time()
                sampler = asyncio.create_task(sample(started))
                tick = 0
                while time.time() - started < RUN_S:
                    for _ in range(RATE // 10):
                        creator = creators[len(sent) % len(creators)]
                        value = encode(request_body(creator))
                        await producer.send(
                            settings.topic_requests, value=value, key=str(creator.store_id).encode()
                        )
                        sent.append((time.time(), value))
                    tick += 1
                    await asyncio.sleep(max(0.0, started + tick * 0.1 - time.time()))
                await producer.flush()
            first = await read_outcomes(settings, expect=len(sent))
            await asyncio.sleep((RETENTION + INTERVAL).total_seconds() / 2)
            sampler.cancel()
            nominal = RATE * (RETENTION + INTERVAL).total_seconds()
            print(f"\nrate {RATE}/s, interval {INTERVAL}, retention {RETENTION}: bound {nominal}")
            for elapsed, rows, default, bound in samples:
                print(f"t={elapsed:5.1f}s rows={rows:4d} default={default} sent-bound={bound}")
            assert len(first) == len(sent)
            assert all(default == 0 for _, _, default, _ in samples)
            assert all(rows <= bound for _, rows, _, bound in samples)
            assert max(rows for _, rows, _, _ in samples) <= nominal + RATE * SLACK_S

            # The oldest requests' records are gone; replayed, they publish nothing again.
            oldest = [value for _, value in sent[: len(creators) * 2]]
            ids = [uuid.UUID(str(json.loads(v)["event_id"])) for v in oldest]
            assert (
                await conn.fetchval(
                    "SELECT count(*) FROM publish_requests WHERE event_id = ANY($1::uuid[])", ids
                )
                == 0
            )
            published_before = await conn.fetchval(
                "SELECT count(*) FROM onboarding_events WHERE event_type = 'store.published'"
            )
            async with producer_for(settings) as producer:
                for value in oldest:
                    store = json.loads(value)["store_id"]
                    await producer.send(settings.topic_requests, value=value, key=store.encode())
            every = outcomes_of(
                await read_topic(settings, settings.topic_outcomes, expect=len(sent) + len(oldest))
            )
        again = [o for o in every if o not in first]
        assert len(again) == len(oldest)
        assert {o.status for o in again} == {Status.ALREADY_PUBLISHED}
        assert sum(o.status is Status.PUBLISHED for o in every) == len(creators)
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM onboarding_events WHERE event_type = 'store.published'"
            )
            == published_before
            == len(creators)
        )
    finally:
        await conn.close()


async def _insert(conn: asyncpg.Connection, at: datetime) -> None:
    await conn.execute(
        """INSERT INTO publish_requests (event_id, store_id, user_id, status, outcome,
                                         first_processed_at)
           VALUES ($1, $2, $2, 'published', '{}', $3)""",
        uuid.uuid4(),
        uuid.uuid4(),
        at,
    )


async def test_a_live_ledger_follows_a_shorter_then_a_longer_interval_and_retention(
    make_settings: MakeSettings, database_url: str
) -> None:
    daily = make_settings()
    short = make_settings(idempotency_partition_interval=INTERVAL, idempotency_retention=RETENTION)
    conn = await asyncpg.connect(database_url)
    try:
        await maintain_ledger(conn, daily)
        now = datetime.now(UTC)
        for ago in (5.0, 3.0, 1.0, 0.0):
            await _insert(conn, now - timedelta(seconds=ago))
        # Shortened on a live ledger: today's day partition is cut, tomorrow's go.
        await maintain_ledger(conn, short)
        partitions, _ = await read_partitions(conn)
        reaching = [p.bounds for p in partitions if p.bounds.hi is None or p.bounds.hi > now]
        assert all(b.lo and b.hi and b.hi - b.lo <= INTERVAL for b in reaching), reaching
        # The row 5 s old is past the new retention at once; the others stay.
        assert await _counts(conn) == (3, 0)
        # Within the retention plus one interval every row of before the change is gone,
        # including those left in the cut partition; newer rows stay.
        await asyncio.sleep((RETENTION + INTERVAL).total_seconds() + 0.5)
        await _insert(conn, datetime.now(UTC))
        await maintain_ledger(conn, short)
        assert await _counts(conn) == (1, 0)
        # Lengthened again: the short partitions stay and the day around them is filled.
        await maintain_ledger(conn, daily)
        await _insert(conn, datetime.now(UTC) + timedelta(hours=1))
        assert await _counts(conn) == (2, 0)
    finally:
        await conn.close()
