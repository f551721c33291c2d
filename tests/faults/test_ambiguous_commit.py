"""The database connection cut during COMMIT: the server commits, the client never hears it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from schemas.events import Status
from tests.fixtures.creators import MakeCreators
from tests.fixtures.settings import MakeSettingsWithTopics
from tests.helpers.support import (
    encode,
    read_outcomes,
    request_body,
    running_consumer,
    send_requests,
)


class CommitCuttingProxy:
    """A TCP proxy to PostgreSQL that, once armed, forwards the next COMMIT and then cuts the
    connection before the server's answer can come back."""

    def __init__(
        self, upstream_host: str, upstream_port: int, on_cut: Callable[[], Awaitable[None]]
    ) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._on_cut = on_cut
        self.armed = False
        self.cuts = 0
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(*self._upstream)

        async def to_server() -> None:
            while data := await client_r.read(65536):
                server_w.write(data)
                await server_w.drain()
                if self.armed and b"COMMIT" in data:
                    self.armed = False
                    # Long enough for the server to run the COMMIT, never long enough for
                    # its answer to reach the client.
                    await asyncio.sleep(0.3)
                    self.cuts += 1
                    await self._on_cut()
                    raise ConnectionAbortedError

        async def to_client() -> None:
            while data := await server_r.read(65536):
                client_w.write(data)
                await client_w.drain()

        tasks = [asyncio.create_task(to_server()), asyncio.create_task(to_client())]
        # Stop reading from the server the moment a cut is decided.
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        for writer in (client_w, server_w):
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def test_a_commit_cut_off_from_its_answer_publishes_once_and_repeats_its_outcome(
    make_settings_with_topics: MakeSettingsWithTopics,
    database_url: str,
    make_creators: MakeCreators,
) -> None:
    parts = urlsplit(database_url)
    committed_before_answer: list[int] = []

    async def count_recorded() -> None:
        direct = await asyncpg.connect(database_url)
        try:
            committed_before_answer.append(
                await direct.fetchval("SELECT count(*) FROM publish_requests")
            )
        finally:
            await direct.close()

    proxy = CommitCuttingProxy(parts.hostname or "127.0.0.1", parts.port or 5432, count_recorded)
    await proxy.start()
    proxied = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
    settings = await make_settings_with_topics(database_url=proxied, topic_partitions=1)
    creators = await make_creators(5)
    values = [encode(request_body(c)) for c in creators]
    try:
        async with running_consumer(settings):
            proxy.armed = True
            await send_requests(settings, values, key=b"one")
            outcomes = await read_outcomes(settings, expect=len(values))
    finally:
        await proxy.stop()
    assert proxy.cuts == 1
    # The cut commit did land: the retry had to find its outcome in the idempotency record.
    assert committed_before_answer[0] > 0
    assert sorted(o.status.value for o in outcomes) == [Status.PUBLISHED.value] * len(values)
    assert len({o.request_event_id for o in outcomes}) == len(values)
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetchval(
            "SELECT count(*) FROM onboarding_events WHERE event_type = 'store.published'"
        )
        recorded = await conn.fetchval("SELECT count(*) FROM publish_requests")
    finally:
        await conn.close()
    assert rows == len(values)
    assert recorded == len(values)
