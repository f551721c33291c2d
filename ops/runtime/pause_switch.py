"""The pause switch ("rollback partiel"): one row that the consumer obeys and people flip."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True)
class ControlState:
    paused: bool
    reason: str | None
    changed_by: str
    changed_at: datetime


async def read_control(conn: asyncpg.Connection | asyncpg.Pool) -> ControlState:
    row = await conn.fetchrow(
        "SELECT paused, reason, changed_by, changed_at FROM publish_control WHERE id"
    )
    if row is None:
        raise RuntimeError("publish_control has no row: run `store-publish migrate`")
    return ControlState(row["paused"], row["reason"], row["changed_by"], row["changed_at"])


async def set_paused(
    conn: asyncpg.Connection | asyncpg.Pool, *, paused: bool, reason: str | None, changed_by: str
) -> ControlState:
    """Flip the switch and record who did it and why.

    The consumer reads the row FOR SHARE inside each batch transaction, so this UPDATE waits
    for batches in flight: once it returns with `paused=True`, nothing more is published.
    """
    row = await conn.fetchrow(
        """WITH changed AS (
               UPDATE publish_control
                  SET paused = $1, reason = $2, changed_by = $3, changed_at = now()
                WHERE id
            RETURNING paused, reason, changed_by, changed_at)
           INSERT INTO publish_control_history (paused, reason, changed_by, changed_at)
           SELECT paused, reason, changed_by, changed_at FROM changed
           RETURNING paused, reason, changed_by, changed_at""",
        paused,
        reason,
        changed_by,
    )
    if row is None:
        raise RuntimeError("publish_control has no row: run `store-publish migrate`")
    return ControlState(row["paused"], row["reason"], row["changed_by"], row["changed_at"])
