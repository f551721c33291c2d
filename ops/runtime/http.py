"""`/health` and `/metrics` over HTTP for each long-running process, and the gateway's own
routes beside them: one server, made one way."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

HealthReport = Callable[[], tuple[bool, Mapping[str, object]]]


@asynccontextmanager
async def serve_health_and_metrics(
    port: int,
    registry: CollectorRegistry,
    health: HealthReport,
    host: str = "127.0.0.1",
    *,
    routes: Sequence[web.RouteDef] = (),
    client_max_size: int = 1024**2,
    shutdown_timeout: float = 60.0,
) -> AsyncIterator[int]:
    """Serve until the block exits; yields the bound port (0 picks a free one).

    `/health` answers 200 with `{"status": "ok", ...details}` while `health` says ok, else
    503 with `"degraded"` (or the status the details give); `/metrics` is the registry in
    Prometheus' text format. `routes` are served beside them; requests in flight get
    `shutdown_timeout` seconds to end when the block exits."""

    async def health_view(_request: web.Request) -> web.Response:
        ok, details = health()
        return web.json_response(
            {"status": "ok" if ok else "degraded", **details}, status=200 if ok else 503
        )

    async def metrics_view(_request: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application(client_max_size=client_max_size)
    app.router.add_get("/health", health_view)
    app.router.add_get("/metrics", metrics_view)
    app.add_routes(routes)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    sockets = getattr(site._server, "sockets", None) or []
    bound = int(sockets[0].getsockname()[1]) if sockets else port
    try:
        yield bound
    finally:
        await runner.cleanup()
