"""The idempotency ledger's partitions, maintained: what `consumers.ledger_plan` decides,
carried out against PostgreSQL.

`maintain_ledger` reads the partitions there are, carries the plan out in one transaction
under an advisory lock (two runners at once: the second finds nothing left to do), then
deletes the rows past the retention from the partitions that cannot go whole in time, in
small batches of their own, and logs and counts what it changed. `store-publish migrate` runs
it once; each consumer at start and then on `next_maintenance`'s schedule.

Partitions are made and dropped by the ledger's owner (`LEDGER_OWNER`), which each
maintenance transaction takes for itself alone (`SET LOCAL ROLE`): the consumer's own role
runs no DDL (docs/security.md, "PostgreSQL roles").

A request whose record was dropped is decided afresh if it ever comes again (an old dead
letter replayed): safe, since a store is published only while a draft and the analytics rows
are unique per request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime

import asyncpg
import structlog
from prometheus_client import Counter

from consumers.ledger_plan import (
    TABLE,
    Bounds,
    Partition,
    Plan,
    next_maintenance,
    partition_name,
    plan,
)
from consumers.repository import Conn
from ops.runtime.faults import describe
from ops.runtime.roles import LEDGER_OWNER
from schemas.settings import Settings

log = structlog.get_logger("consumers.ledger")

DEFAULT_PARTITION = "publish_requests_default"
# Any constant distinct from the migration runner's lock.
_LEDGER_LOCK = 7_245_902
# A partition is created or dropped under a brief lock on the ledger; waiting longer than
# this behind the batches would stall them, so the run gives up and the next one tries again.
_LOCK_TIMEOUT = "3s"
# Rows deleted per statement from a partition too long to go whole: each batch is its own
# short transaction, so a backlog never holds locks or runs into the statement timeout.
_PURGE_BATCH = 5000
# Slept past the moment a run is due: the wall clock read after waking must be past it.
_WAKE_MARGIN_S = 0.02


Executor = Conn | asyncpg.Pool


# Takes the owner's role for the transaction when the role owns the ledger here and the
# session may take it (the consumer's role is its member; a superuser may take any): a
# database migrated before the roles existed keeps the session's own role.
_TAKE_OWNER = """
SELECT set_config('role', $2, true) FROM pg_class
 WHERE oid = $1::regclass
   AND CASE WHEN pg_get_userbyid(relowner) = $2 THEN pg_has_role($2, 'MEMBER') ELSE false END"""


async def _as_owner(conn: Conn) -> None:
    """The rest of this transaction runs as the ledger's owner, where it can."""
    await conn.execute(_TAKE_OWNER, TABLE, LEDGER_OWNER)


async def read_partitions(conn: Conn) -> tuple[list[Partition], bool]:
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


def _bound(at: datetime | None, unbounded: str) -> str:
    return unbounded if at is None else "'" + at.astimezone(UTC).isoformat() + "'"


def _aside(name: str) -> str:
    return f"{name}_retiring"


async def _attach(conn: Conn, name: str, bounds: Bounds, has_default: bool) -> None:
    """Attach table `name` for `bounds`; rows that went to the default partition meanwhile
    move in first (attaching refuses a default partition holding rows of the new range)."""
    if has_default:
        await conn.execute(
            f"""WITH moved AS (
                    DELETE FROM "{DEFAULT_PARTITION}"
                     WHERE ($1::timestamptz IS NULL OR first_processed_at >= $1)
                       AND ($2::timestamptz IS NULL OR first_processed_at < $2)
                 RETURNING *)
                INSERT INTO "{name}" SELECT * FROM moved""",
            bounds.lo,
            bounds.hi,
        )
    await conn.execute(
        f'ALTER TABLE "{TABLE}" ATTACH PARTITION "{name}" FOR VALUES '
        f"FROM ({_bound(bounds.lo, 'MINVALUE')}) TO ({_bound(bounds.hi, 'MAXVALUE')})"
    )


async def _carry_out(conn: Conn, work: Plan, has_default: bool) -> list[str]:
    """Drop, cut, create; returns the partitions cut that went altogether (nothing left of
    their past)."""
    for name in work.drop:
        await conn.execute(f'DROP TABLE "{name}"')
    # Out of the way first: a partition of the interval may take a retired one's name.
    for retiring in work.retire:
        await conn.execute(f'ALTER TABLE "{TABLE}" DETACH PARTITION "{retiring.name}"')
        await conn.execute(f'ALTER TABLE "{retiring.name}" RENAME TO "{_aside(retiring.name)}"')
    for bounds in work.create:
        assert bounds.lo is not None
        name = partition_name(bounds.lo)
        # Created apart and attached: attaching locks the ledger less than CREATE ... PARTITION
        # OF does.
        await conn.execute(
            f'CREATE TABLE "{name}" (LIKE "{TABLE}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS)'
        )
        await _attach(conn, name, bounds, has_default)
    gone: list[str] = []
    for retiring in work.retire:
        aside, keep = _aside(retiring.name), retiring.keep
        # Its rows of the current interval on go to the partitions that now hold that time.
        await conn.execute(
            f"""WITH moved AS (
                    DELETE FROM "{aside}"
                     WHERE $1::timestamptz IS NULL OR first_processed_at >= $1
                 RETURNING *)
                INSERT INTO "{TABLE}" SELECT * FROM moved""",
            keep.hi if keep is not None else None,
        )
        if keep is not None and await conn.fetchval(f'SELECT EXISTS (SELECT FROM "{aside}")'):
            await conn.execute(f'ALTER TABLE "{aside}" RENAME TO "{retiring.name}"')
            await _attach(conn, retiring.name, keep, has_default)
        else:
            await conn.execute(f'DROP TABLE "{aside}"')
            gone.append(retiring.name)
    return gone


async def _purge(conn: Conn, names: list[str], horizon: datetime) -> int:
    """Delete the rows before `horizon` from each of `names`, a batch per transaction, each
    under the maintenance lock; returns the rows deleted."""
    deleted = 0
    for name in names:
        while True:
            try:
                async with conn.transaction():
                    await _as_owner(conn)
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", _LEDGER_LOCK)
                    status = await conn.execute(
                        f"""DELETE FROM "{name}" WHERE ctid = ANY(ARRAY(
                                SELECT ctid FROM "{name}" WHERE first_processed_at < $1
                                 LIMIT {_PURGE_BATCH}))""",
                        horizon,
                    )
            except asyncpg.UndefinedTableError:
                break  # gone whole meanwhile, by another runner
            batch = int(status.split()[-1])
            deleted += batch
            if batch < _PURGE_BATCH:
                break
    return deleted


async def maintain_ledger(
    conn_or_pool: Executor,
    settings: Settings,
    now: datetime | None = None,
    *,
    created_total: Counter | None = None,
    dropped_total: Counter | None = None,
) -> tuple[list[str], list[str]]:
    """Create the partitions ahead, cut those longer than the interval, drop those past the
    retention and delete the rows past it from those that cannot go whole in time; returns
    the names of the partitions (created, dropped). Idempotent: run again, it changes
    nothing."""
    if isinstance(conn_or_pool, asyncpg.Pool):
        async with conn_or_pool.acquire() as pooled:
            return await maintain_ledger(
                pooled, settings, now, created_total=created_total, dropped_total=dropped_total
            )
    _, created, dropped = await _maintain(
        conn_or_pool, settings, now if now is not None else datetime.now(UTC)
    )
    if created_total is not None and created:
        created_total.inc(len(created))
    if dropped_total is not None and dropped:
        dropped_total.inc(len(dropped))
    return created, dropped


async def _maintain(
    conn: Conn, settings: Settings, now: datetime
) -> tuple[Plan, list[str], list[str]]:
    async with conn.transaction():
        await conn.execute(f"SET LOCAL lock_timeout = '{_LOCK_TIMEOUT}'")
        await conn.execute("SET LOCAL TimeZone = 'UTC'")
        await _as_owner(conn)
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LEDGER_LOCK)
        existing, has_default = await read_partitions(conn)
        work = plan(
            existing,
            now,
            settings.idempotency_partition_interval,
            settings.idempotency_retention,
        )
        gone = await _carry_out(conn, work, has_default)
    purged = await _purge(
        conn, [*work.purge, *([DEFAULT_PARTITION] if has_default else [])], work.horizon
    )
    created = [partition_name(b.lo) for b in work.create if b.lo is not None]
    dropped = [*work.drop, *gone]
    for name, bounds in zip(created, work.create, strict=True):
        log.info(
            "Ledger partition created",
            partition=name,
            rangeFrom=bounds.lo.isoformat() if bounds.lo else None,
            rangeTo=bounds.hi.isoformat() if bounds.hi else None,
        )
    for retiring in work.retire:
        log.info(
            "Ledger partition longer than the interval cut",
            partition=retiring.name,
            rangeTo=retiring.keep.hi.isoformat() if retiring.keep and retiring.keep.hi else None,
            interval=settings.idempotency_partition_interval.total_seconds(),
        )
    for name in dropped:
        log.info("Ledger partition dropped", partition=name, horizon=work.horizon.isoformat())
    if purged:
        log.info(
            "Ledger rows past the retention deleted from partitions that cannot go whole",
            partitions=[*work.purge, *([DEFAULT_PARTITION] if has_default else [])],
            rows=purged,
        )
    return work, created, dropped


async def _on_schedule(
    pool: asyncpg.Pool,
    settings: Settings,
    created_total: Counter,
    dropped_total: Counter,
    runs_total: Counter | None,
) -> None:
    interval = settings.idempotency_partition_interval
    retention = settings.idempotency_retention
    layout: tuple[Bounds, ...] = ()
    while True:
        try:
            async with pool.acquire() as conn:
                work, created, dropped = await _maintain(conn, settings, datetime.now(UTC))
            layout = work.layout
            created_total.inc(len(created))
            dropped_total.inc(len(dropped))
            result = "ok"
        except Exception as error:
            # The partitions made ahead leave time; the next run tries again.
            log.warning("Ledger maintenance failed", error=describe(error))
            result = "failed"
        if runs_total is not None:
            runs_total.labels(result=result).inc()
        now = datetime.now(UTC)
        due = next_maintenance(now, interval, retention, layout)
        await asyncio.sleep((due - now).total_seconds() + _WAKE_MARGIN_S)


@asynccontextmanager
async def ledger_maintenance(
    pool: asyncpg.Pool,
    settings: Settings,
    created_total: Counter,
    dropped_total: Counter,
    runs_total: Counter | None = None,
) -> AsyncIterator[asyncio.Task[None]]:
    """Maintenance in the background while the context lasts: at once, then at least twice
    per interval (at most an hour apart) and on the moment a partition passes the retention.
    `runs_total`: a counter with a `result` label (ok, failed)."""
    task = asyncio.create_task(
        _on_schedule(pool, settings, created_total, dropped_total, runs_total)
    )
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
