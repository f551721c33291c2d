"""What the gateway reads from PostgreSQL: the caller's store and the pause switch in one
round trip, and a decided request's outcome from the ledger."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from schemas.events import PublishOutcome


@dataclass(frozen=True)
class Caller:
    user_exists: bool
    store_id: uuid.UUID | None
    paused: bool


async def find_caller(pool: asyncpg.Pool, user_id: uuid.UUID) -> Caller:
    """The user's store (`stores.owner_id`; the oldest when there are several) and whether
    publishing is paused."""
    row = await pool.fetchrow(
        """SELECT EXISTS (SELECT 1 FROM users WHERE id = $1) AS user_exists,
                  (SELECT id FROM stores WHERE owner_id = $1
                    ORDER BY created_at, id LIMIT 1) AS store_id,
                  COALESCE((SELECT paused FROM publish_control WHERE id), false) AS paused""",
        user_id,
    )
    assert row is not None
    return Caller(row["user_exists"], row["store_id"], row["paused"])


async def recorded_outcome(
    pool: asyncpg.Pool, request_id: uuid.UUID, user_id: uuid.UUID
) -> PublishOutcome | None:
    """The outcome the ledger holds for `user_id`'s request `request_id`, if it does."""
    value = await pool.fetchval(
        """SELECT outcome::text FROM publish_requests
            WHERE event_id = $1 AND user_id = $2
            ORDER BY first_processed_at DESC LIMIT 1""",
        request_id,
        user_id,
    )
    return PublishOutcome.model_validate_json(value) if value is not None else None
