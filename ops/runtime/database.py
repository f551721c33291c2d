"""The database pool, made one way for every process."""

from __future__ import annotations

import asyncpg

from schemas.settings import Settings

# How long a pool waits for a connection to open: a database that does not answer in this
# is down for the caller (`ops.runtime.faults` takes the timeout for unreachable).
CONNECT_TIMEOUT_S = 5


async def _keep_session(connection: asyncpg.Connection) -> None:
    """What a connection needs before it goes back to the pool, beyond what asyncpg always
    does (roll back a transaction left open, drop listeners): nothing. asyncpg's default
    reset is one more round trip per acquire (`pg_advisory_unlock_all(); CLOSE ALL;
    UNLISTEN *; RESET ALL`, four commands for the server) undoing session state this code
    never makes: its settings are transaction-scoped (`SET LOCAL`, `set_config(…, true)`),
    its advisory locks too (`pg_advisory_xact_lock`), and it neither listens nor keeps
    cursors; the session's own settings (below) are the connection's start-up ones."""


def database_pool(settings: Settings, process: str, *, max_size: int | None = None) -> asyncpg.Pool:
    """A pool for `process` (its connections show as `store-publish-<process>` in
    pg_stat_activity), of `DB_POOL_MAX_SIZE` connections unless told fewer.

    min_size=0: the process starts, and waits, while PostgreSQL is down. No reset query on
    release (`_keep_session`). The timeouts are session settings rather than SET LOCAL in
    each transaction: one round trip fewer per batch; a lock or statement past them is a
    retryable failure (`ops.runtime.faults`)."""
    return asyncpg.create_pool(
        settings.dsn(),
        min_size=0,
        max_size=max_size or settings.db_pool_max_size,
        timeout=CONNECT_TIMEOUT_S,
        reset=_keep_session,
        server_settings={
            "lock_timeout": str(settings.db_lock_timeout_ms),
            "statement_timeout": str(settings.db_statement_timeout_ms),
            "idle_in_transaction_session_timeout": str(settings.db_idle_in_transaction_timeout_ms),
            "application_name": f"store-publish-{process}",
        },
    )
