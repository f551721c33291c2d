"""The gateway phase: N concurrent HTTP clients, each POSTing `/api/store/publish` for
creators of the seeded population, against `store-publish gateway`, `consume` and `stream`
(child processes) on a database and topics of the phase's own. Each request is timed from
its sending to its HTTP answer, which comes once the pipeline has decided it."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from dataclasses import dataclass

import aiohttp
import jwt
from pydantic import SecretStr

from ops.bench.context import PARTITIONS, Run
from ops.bench.figures import quantile
from ops.bench.load import copy_database
from ops.bench.probes import Child, free_port, wait_until
from ops.runtime.topics import create_topics

ROUTE = "/api/store/publish"


@dataclass(frozen=True)
class GatewayFigures:
    clients: int
    requests: int
    seconds: float
    statuses: dict[int, int]
    answer_ms: dict[str, float | None]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def as_json(self) -> dict[str, object]:
        return {
            "clients": self.clients,
            "requests": self.requests,
            "seconds": self.seconds,
            "events_per_s": round(self.rate, 1),
            "statuses": {str(code): n for code, n in self.statuses.items()},
            "answer_ms": self.answer_ms,
        }

    def line(self) -> str:
        q = self.answer_ms
        codes = ", ".join(f"{code}: {n:,}" for code, n in sorted(self.statuses.items()))
        return (
            f"  gateway: {self.requests:,} HTTP requests from {self.clients} clients in "
            f"{self.seconds:.1f} s = {self.rate:,.0f} requests/s; answer p50 {q['p50']} ms, "
            f"p99 {q['p99']} ms, max {q['max']} ms ({codes})"
        )


async def run_gateway_phase(run: Run, clients: int, requests: int) -> GatewayFigures:
    """`requests` POSTs, one per creator, `clients` at a time; the figures of their answers."""
    assert run.population is not None, "seeded first"
    phase = "gateway"
    dsn = await copy_database(run.base.dsn(), run.template, f"bench_{run.run_id}_{phase}")
    run.databases.append(f"bench_{run.run_id}_{phase}")
    secret = secrets.token_hex(32)
    port = free_port()
    settings = run.settings(
        phase,
        run.topic(f"{phase}.requested"),
        dsn,
        jwt_secret=SecretStr(secret),
        gateway_http_port=port,
        # Each creator sends once: the limit is not what this phase measures.
        gateway_rate_per_user_per_min=1000,
    )
    await create_topics(
        settings, [settings.topic_requests, settings.topic_outcomes, settings.topic_dlq], PARTITIONS
    )
    children = [
        Child(f"{phase}-stream", "stream", settings, run.workdir),
        Child(f"{phase}-consumer", "consume", settings, run.workdir),
        Child(f"{phase}-gateway", "gateway", settings, run.workdir),
    ]
    stream, consumer, gateway = children
    creators = run.population.creators[:requests]
    expires = int(time.time()) + 3600
    tokens = [jwt.encode({"sub": str(c.user_id), "exp": expires}, secret) for c in creators]
    answer_ms: list[float] = []
    statuses: Counter[int] = Counter()
    url = f"http://127.0.0.1:{port}{ROUTE}"

    async def client(http: aiohttp.ClientSession, queue: asyncio.Queue[str]) -> None:
        while not queue.empty():
            token = queue.get_nowait()
            began = time.monotonic()
            async with http.post(
                url, data=b'{"confirmPublish": true}', headers={"Authorization": f"Bearer {token}"}
            ) as answer:
                await answer.read()
                statuses[answer.status] += 1
            answer_ms.append((time.monotonic() - began) * 1000)

    try:
        await wait_until(lambda: stream.logged("Rates stream started"), 120.0, "the stream")
        await wait_until(lambda: bool(consumer.assigned()), 120.0, "the consumer's partitions")
        await wait_until(lambda: gateway.logged("Gateway started"), 120.0, "the gateway")
        queue: asyncio.Queue[str] = asyncio.Queue()
        for token in tokens:
            queue.put_nowait(token)
        connector = aiohttp.TCPConnector(limit=clients)
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            began = time.monotonic()
            await asyncio.gather(*(client(http, queue) for _ in range(clients)))
            seconds = time.monotonic() - began
        for child in children:
            child.check_alive()
    finally:
        for child in children:
            child.stop()
    ordered = sorted(answer_ms)
    return GatewayFigures(
        clients=clients,
        requests=len(answer_ms),
        seconds=round(seconds, 2),
        statuses=dict(statuses),
        answer_ms={
            "p50": quantile(ordered, 0.50),
            "p99": quantile(ordered, 0.99),
            "max": round(ordered[-1], 1) if ordered else None,
        },
    )
