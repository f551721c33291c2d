"""Whether the services answer, asked the way every command asks: within seconds, and with an
`OperatorError` saying why not. The long-running processes wait for services by design and
never come here; the commands do, before they change anything.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from ops.errors import ExitCode, OperatorError, detail, unreachable_database, unreachable_kafka
from ops.runtime.faults import describe, is_unreachable
from schemas.settings import Settings

T = TypeVar("T")

# Short, so that an unreachable service fails the command in seconds, not minutes.
KAFKA_TIMEOUT_MS = 5000
DATABASE_TIMEOUT_S = 5.0
# The whole conversation with a service (bootstrap, metadata, offsets) must fit in this.
SERVICE_DEADLINE_S = 15.0


async def connect_database(dsn: str) -> asyncpg.Connection:
    """A connection, or an OperatorError saying why there is none (within seconds)."""
    try:
        return await asyncpg.connect(dsn, timeout=DATABASE_TIMEOUT_S)
    except Exception as error:
        if is_unreachable(error):
            raise unreachable_database(error) from error
        if isinstance(error, asyncpg.PostgresError):
            # The server answered and said no: a password, a user or a database name is wrong.
            raise OperatorError(
                f"PostgreSQL refused the connection: {detail(error)} (check DATABASE_URL)",
                ExitCode.UNREACHABLE,
            ) from error
        raise


async def in_database(dsn: str, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Run `work` on a fresh connection; a missing table means the schema is not migrated."""
    conn = await connect_database(dsn)
    try:
        return await work(conn)
    except asyncpg.UndefinedTableError as error:
        raise OperatorError(
            f"database not migrated ({error}): run `store-publish migrate`", ExitCode.NOT_SET_UP
        ) from error
    except Exception as error:
        if is_unreachable(error):
            raise OperatorError(
                f"PostgreSQL connection lost: {error}", ExitCode.UNREACHABLE
            ) from error
        raise
    finally:
        await conn.close()


async def with_kafka_deadline(servers: str, work: Awaitable[T]) -> T:
    """`work`, or an OperatorError if Kafka fails or does not answer within the deadline."""
    try:
        return await asyncio.wait_for(work, timeout=SERVICE_DEADLINE_S)
    except TimeoutError as error:
        raise unreachable_kafka(servers, TimeoutError("no answer in time")) from error
    except KafkaError as error:
        if is_unreachable(error):
            raise unreachable_kafka(servers, error) from error
        raise OperatorError(
            f"Kafka at {servers} refused: {describe(error)} (check the KAFKA_* settings)",
            ExitCode.UNREACHABLE,
        ) from error


async def reach_database(settings: Settings) -> None:
    """PostgreSQL answers within seconds, or an OperatorError says why it does not."""
    conn = await connect_database(settings.dsn())
    await conn.close()


async def reach_kafka(settings: Settings) -> None:
    """Kafka answers within seconds, or an OperatorError says why it does not."""
    admin = AIOKafkaAdminClient(
        **settings.kafka_client_options(), request_timeout_ms=KAFKA_TIMEOUT_MS
    )

    async def bootstrap() -> None:
        try:
            await admin.start()
        finally:
            await admin.close()

    await with_kafka_deadline(settings.kafka_bootstrap_servers, bootstrap())


async def reach_services(settings: Settings) -> None:
    """Both services answer, the database first (the cheaper question)."""
    await reach_database(settings)
    await reach_kafka(settings)
