"""The one database pool (`ops.runtime.database.database_pool`), on the real server: a
connection goes back to the pool without a reset round trip, and still comes back clean."""

from __future__ import annotations

import asyncpg

from ops.runtime.database import database_pool
from tests.fixtures.settings import MakeSettings


async def _last_query(database_url: str, pid: int) -> str:
    watcher = await asyncpg.connect(database_url)
    try:
        return str(await watcher.fetchval("SELECT query FROM pg_stat_activity WHERE pid = $1", pid))
    finally:
        await watcher.close()


async def test_a_released_connection_sends_the_server_nothing(
    make_settings: MakeSettings, database_url: str
) -> None:
    """asyncpg's default reset would be the backend's last statement after a release."""
    async with database_pool(make_settings(), "test", max_size=1) as pool:
        async with pool.acquire() as conn:
            pid = await conn.fetchval("SELECT pg_backend_pid()")
            await conn.fetchval("SELECT 'the last statement before release'")
        assert await _last_query(database_url, pid) == (
            "SELECT 'the last statement before release'"
        )


async def test_a_released_connection_comes_back_out_of_its_transaction_with_its_session(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings(db_lock_timeout_ms=1500)
    async with database_pool(settings, "test", max_size=1) as pool:
        async with pool.acquire() as conn:
            pid = await conn.fetchval("SELECT pg_backend_pid()")
            # A transaction begun outside `conn.transaction()` and never ended.
            await conn.execute("BEGIN")
            await conn.execute("SET LOCAL lock_timeout = '1ms'")
            assert conn.is_in_transaction()
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT pg_backend_pid()") == pid  # the same session
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SHOW lock_timeout") == "1500ms"
            assert await conn.fetchval("SHOW application_name") == "store-publish-test"
