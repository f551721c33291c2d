"""The consumer's state where `store-publish status` can read it: one row per process in
`consumer_states`, rewritten when the state changes and every `HEARTBEAT_S`, best effort.

A database at fault may refuse the write too (read-only, unreachable): then the row goes
stale, and `status` says when it was last written; `/health` stays the live answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import structlog

from ops.runtime.faults import describe
from ops.runtime.waiting import within

log = structlog.get_logger("consumers.state_report")

HEARTBEAT_S = 30.0
_WRITE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class StateReport:
    state: str  # working, paused, database_unavailable, database_fault
    sqlstate: str | None
    error: str | None
    since: datetime


class StateReporter:
    def __init__(self, pool: asyncpg.Pool, owner: str, consumer_group: str) -> None:
        self._pool = pool
        self._owner = owner
        self._group = consumer_group
        self._latest: StateReport | None = None
        self._wake = asyncio.Event()

    def report(self, state: StateReport) -> None:
        """Remember `state`; the writer task writes it soon. Never blocks the loop."""
        if self._latest is None or (state.state, state.sqlstate) != (
            self._latest.state,
            self._latest.sqlstate,
        ):
            self._latest = state
            self._wake.set()

    async def _write(self, state: StateReport) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute(
                """INSERT INTO consumer_states
                          (owner, consumer_group, state, sqlstate, error, since)
                   VALUES ($1, $2, $3, $4, $5, $6)
                   ON CONFLICT (owner) DO UPDATE
                      SET consumer_group = EXCLUDED.consumer_group, state = EXCLUDED.state,
                          sqlstate = EXCLUDED.sqlstate, error = EXCLUDED.error,
                          since = EXCLUDED.since, updated_at = now()""",
                self._owner,
                self._group,
                state.state,
                state.sqlstate,
                state.error,
                state.since,
            )
            await conn.execute(
                "DELETE FROM consumer_states WHERE updated_at < now() - interval '1 day'"
            )

    async def _run(self) -> None:
        while True:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=HEARTBEAT_S)
            self._wake.clear()
            state = self._latest
            if state is None:
                continue
            try:
                await within(self._write(state), _WRITE_TIMEOUT_S)
            except Exception as error:
                log.debug("Consumer state not recorded", error=describe(error))

    @asynccontextmanager
    async def running(self) -> AsyncIterator[StateReporter]:
        """Writes while the block runs; the process's row is removed when it ends."""
        task = asyncio.create_task(self._run())
        try:
            yield self
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            with suppress(Exception):
                await within(self._forget(), _WRITE_TIMEOUT_S)

    async def _forget(self) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute("DELETE FROM consumer_states WHERE owner = $1", self._owner)
