"""The idempotency ledger's partitions: created ahead, dropped once past the retention.

`publish_requests` is range-partitioned by `first_processed_at` (migration 0006). Which
partitions to create and drop for a given time is `plan`, pure; `maintain_ledger` reads the
partitions there are, carries the plan out in one transaction under an advisory lock (two
runners at once: the second finds nothing left to do) and logs and counts what it changed.
`store-publish migrate` runs it once; each consumer at start and then every hour.

A request whose record was dropped is decided afresh if it ever comes again (an old dead
letter replayed): safe, since a store is published only while a draft and the analytics rows
are unique per request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog
from prometheus_client import Counter

from consumers.repository import Conn
from ops.runtime.faults import describe
from schemas.settings import Settings

log = structlog.get_logger("consumers.ledger")

TABLE = "publish_requests"
DEFAULT_PARTITION = "publish_requests_default"
# Partitions ready beyond the current interval: the consumer runs maintenance hourly, so two
# more intervals leave room for many failed runs before a row lands in the default partition.
AHEAD = 2
EVERY = timedelta(hours=1)
# Any constant distinct from the migration runner's lock.
_LEDGER_LOCK = 7_245_902
# A partition is created or dropped under a brief lock on the ledger; waiting longer than
# this behind the batches would stall them, so the run gives up and the next one tries again.
_LOCK_TIMEOUT = "3s"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Bounds:
    """A partition's range [lo, hi); None is MINVALUE for lo, MAXVALUE for hi."""

    lo: datetime | None
    hi: datetime | None


@dataclass(frozen=True)
class Partition:
    name: str
    bounds: Bounds


@dataclass(frozen=True)
class Plan:
    create: tuple[Bounds, ...]
    drop: tuple[str, ...]
    # Rows decided before this are past the retention.
    horizon: datetime


def interval_start(at: datetime, interval: timedelta) -> datetime:
    """The start of the interval holding `at`, intervals counted from the Unix epoch (UTC):
    a one-day interval starts at midnight UTC."""
    return _EPOCH + ((at - _EPOCH) // interval) * interval


def partition_name(lo: datetime) -> str:
    lo = lo.astimezone(UTC)
    suffix = lo.strftime("%Y%m%dt%H%M%S") + (f"{lo.microsecond:06d}" if lo.microsecond else "")
    return f"{TABLE}_p{suffix}"


def _overlaps(a: Bounds, b: Bounds) -> bool:
    a_before_b_ends = b.hi is None or a.lo is None or a.lo < b.hi
    b_before_a_ends = a.hi is None or b.lo is None or b.lo < a.hi
    return a_before_b_ends and b_before_a_ends


def _uncovered(window: Bounds, covered: Sequence[Bounds]) -> list[Bounds]:
    """The parts of `window` (finite) no range of `covered` holds."""
    assert window.lo is not None
    assert window.hi is not None
    pieces = [window]
    for taken in covered:
        rest: list[Bounds] = []
        for piece in pieces:
            assert piece.lo is not None
            assert piece.hi is not None
            if not _overlaps(piece, taken):
                rest.append(piece)
                continue
            if taken.lo is not None and taken.lo > piece.lo:
                rest.append(Bounds(piece.lo, taken.lo))
            if taken.hi is not None and taken.hi < piece.hi:
                rest.append(Bounds(taken.hi, piece.hi))
        pieces = rest
    return sorted(pieces, key=lambda b: b.lo or _EPOCH)


def plan(
    existing: Sequence[Partition],
    now: datetime,
    interval: timedelta,
    retention: timedelta,
    ahead: int = AHEAD,
) -> Plan:
    """Drop every partition whose whole range ends at or before `now - retention`; create
    what the current interval and the `ahead` next ones lack (partitions of another interval,
    from before a change of setting, are kept and only the gaps between them filled)."""
    horizon = now - retention
    drop = tuple(p.name for p in existing if p.bounds.hi is not None and p.bounds.hi <= horizon)
    covered = [p.bounds for p in existing if p.name not in drop]
    start = interval_start(now, interval)
    create: list[Bounds] = []
    for index in range(ahead + 1):
        window = Bounds(start + index * interval, start + (index + 1) * interval)
        for piece in _uncovered(window, covered):
            create.append(piece)
            covered.append(piece)
    return Plan(tuple(create), drop, horizon)


Executor = Conn | asyncpg.Pool


async def _partitions(conn: Conn) -> tuple[list[Partition], bool]:
    """The ledger's range partitions, and whether it has a default one. The bounds are read
    back from their text, printed in UTC (the transaction's time zone)."""
    rows = await conn.fetch(
        """SELECT c.relname AS name, b.bound = 'DEFAULT' AS is_default,
                  (regexp_match(b.bound, 'FROM \\(''([^'']+)''\\)'))[1]::timestamptz AS lo,
                  (regexp_match(b.bound, 'TO \\(''([^'']+)''\\)'))[1]::timestamptz AS hi
             FROM pg_inherits i
             JOIN pg_class c ON c.oid = i.inhrelid
             CROSS JOIN LATERAL (SELECT pg_get_expr(c.relpartbound, c.oid) AS bound) b
            WHERE i.inhparent = $1::regclass""",
        TABLE,
    )
    partitions = [
        Partition(row["name"], Bounds(row["lo"], row["hi"]))
        for row in rows
        if not row["is_default"]
    ]
    return partitions, any(row["is_default"] for row in rows)


def _literal(at: datetime) -> str:
    return "'" + at.astimezone(UTC).isoformat() + "'"


async def _carry_out(conn: Conn, work: Plan, has_default: bool) -> int:
    """Drop, then create; returns the rows deleted from the default partition."""
    for name in work.drop:
        await conn.execute(f'DROP TABLE "{name}"')
    purged = 0
    if has_default:
        status = await conn.execute(
            f'DELETE FROM "{DEFAULT_PARTITION}" WHERE first_processed_at < $1', work.horizon
        )
        purged = int(status.split()[-1])
    for bounds in work.create:
        assert bounds.lo is not None
        assert bounds.hi is not None
        name = partition_name(bounds.lo)
        # Created apart and attached: attaching locks the ledger less than CREATE ... PARTITION
        # OF does, and rows that went to the default partition meanwhile move in first.
        await conn.execute(
            f'CREATE TABLE "{name}" (LIKE "{TABLE}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS)'
        )
        if has_default:
            await conn.execute(
                f"""WITH moved AS (
                        DELETE FROM "{DEFAULT_PARTITION}"
                         WHERE first_processed_at >= $1 AND first_processed_at < $2
                     RETURNING *)
                    INSERT INTO "{name}" SELECT * FROM moved""",
                bounds.lo,
                bounds.hi,
            )
        await conn.execute(
            f'ALTER TABLE "{TABLE}" ATTACH PARTITION "{name}" '
            f"FOR VALUES FROM ({_literal(bounds.lo)}) TO ({_literal(bounds.hi)})"
        )
    return purged


async def maintain_ledger(
    conn_or_pool: Executor,
    settings: Settings,
    now: datetime | None = None,
    *,
    created_total: Counter | None = None,
    dropped_total: Counter | None = None,
) -> tuple[list[str], list[str]]:
    """Create the partitions ahead and drop those past the retention; returns the names of
    the partitions (created, dropped). Idempotent: run again, it changes nothing."""
    if isinstance(conn_or_pool, asyncpg.Pool):
        async with conn_or_pool.acquire() as pooled:
            return await maintain_ledger(
                pooled, settings, now, created_total=created_total, dropped_total=dropped_total
            )
    conn: Conn = conn_or_pool
    now = now if now is not None else datetime.now(UTC)
    async with conn.transaction():
        await conn.execute(f"SET LOCAL lock_timeout = '{_LOCK_TIMEOUT}'")
        await conn.execute("SET LOCAL TimeZone = 'UTC'")
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LEDGER_LOCK)
        existing, has_default = await _partitions(conn)
        work = plan(
            existing,
            now,
            settings.idempotency_partition_interval,
            settings.idempotency_retention,
        )
        purged = await _carry_out(conn, work, has_default)
    created = [partition_name(b.lo) for b in work.create if b.lo is not None]
    for name, bounds in zip(created, work.create, strict=True):
        log.info(
            "Ledger partition created",
            partition=name,
            rangeFrom=bounds.lo.isoformat() if bounds.lo else None,
            rangeTo=bounds.hi.isoformat() if bounds.hi else None,
        )
    for name in work.drop:
        log.info("Ledger partition dropped", partition=name, horizon=work.horizon.isoformat())
    if purged:
        log.info(
            "Ledger rows past the retention deleted from the default partition",
            partition=DEFAULT_PARTITION,
            rows=purged,
        )
    if created_total is not None and created:
        created_total.inc(len(created))
    if dropped_total is not None and work.drop:
        dropped_total.inc(len(work.drop))
    return created, list(work.drop)


async def _every_hour(
    pool: asyncpg.Pool, settings: Settings, created_total: Counter, dropped_total: Counter
) -> None:
    while True:
        try:
            await maintain_ledger(
                pool, settings, created_total=created_total, dropped_total=dropped_total
            )
        except Exception as error:
            # The partitions made ahead leave time; the next run tries again.
            log.warning("Ledger maintenance failed", error=describe(error))
        await asyncio.sleep(EVERY.total_seconds())


@asynccontextmanager
async def ledger_maintenance(
    pool: asyncpg.Pool, settings: Settings, created_total: Counter, dropped_total: Counter
) -> AsyncIterator[asyncio.Task[None]]:
    """Maintenance in the background while the context lasts: at once, then every hour."""
    task = asyncio.create_task(_every_hour(pool, settings, created_total, dropped_total))
    try:
        yield task
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


async def maintain_ledger_once(settings: Settings) -> tuple[list[str], list[str]]:
    """One run on a connection of its own (`store-publish migrate`)."""
    conn = await asyncpg.connect(settings.dsn())
    try:
        return await maintain_ledger(conn, settings)
    finally:
        await conn.close()
