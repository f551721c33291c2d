"""A lock another session holds: how the tests make the database slow for the pipeline (a
store row locked past the retries, the step definitions unreadable) without stopping it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import asyncpg
from asyncpg.transaction import Transaction


class HeldLock:
    """The open transaction that holds the lock; `release()` ends it before the block does."""

    def __init__(self, transaction: Transaction) -> None:
        self._transaction = transaction
        self._released = False

    async def release(self) -> None:
        if not self._released:
            self._released = True
            await self._transaction.rollback()


@asynccontextmanager
async def held_lock(database_url: str, statement: str, *args: object) -> AsyncIterator[HeldLock]:
    """Runs `statement` (a `LOCK TABLE` or `SELECT ... FOR UPDATE`) in a transaction on a
    connection of its own and holds what it locked until the block ends or `release()`."""
    conn = await asyncpg.connect(database_url)
    try:
        transaction = conn.transaction()
        await transaction.start()
        held = HeldLock(transaction)
        try:
            await conn.execute(statement, *args)
            yield held
        finally:
            await held.release()
    finally:
        await conn.close()


def stores_locked(
    database_url: str, store_ids: Iterable[uuid.UUID]
) -> AbstractAsyncContextManager[HeldLock]:
    """The stores' rows locked FOR UPDATE: a request for one of them waits on its row until
    the lock timeout, and fails once its retries are spent."""
    return held_lock(
        database_url, "SELECT 1 FROM stores WHERE id = ANY($1::uuid[]) FOR UPDATE", list(store_ids)
    )


def step_definitions_locked(database_url: str) -> AbstractAsyncContextManager[HeldLock]:
    """The step definitions unreadable (ACCESS EXCLUSIVE): gating cannot be evaluated."""
    return held_lock(
        database_url, "LOCK TABLE onboarding_step_definitions IN ACCESS EXCLUSIVE MODE"
    )
