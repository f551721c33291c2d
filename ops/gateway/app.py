"""`store-publish gateway`: the one place that builds the gateway's collaborators (the
database pool, the producer, the outcome follower), serves the routes, and stops them.

SIGTERM: new connections are refused, callers still waiting for an outcome are answered 202
with their request id (the request is in Kafka and will be decided), then the clients stop.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import asyncpg
import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry

from ops.gateway.body import MAX_BODY_BYTES
from ops.gateway.emitter import Emitter
from ops.gateway.metrics import GatewayMetrics
from ops.gateway.rate import RateLimiter
from ops.gateway.routes import Gateway
from ops.gateway.waiting import OutcomeFollower
from ops.runtime.waiting import until_started
from schemas.settings import Settings

log = structlog.get_logger("ops.gateway.app")

# Handlers end within this once stop is set (a waiting caller is answered 202 at once).
_SHUTDOWN_TIMEOUT_S = 5.0


def _pool(settings: Settings) -> asyncpg.Pool:
    # min_size=0: the gateway starts while PostgreSQL is down and answers 503 until it is up.
    return asyncpg.create_pool(
        settings.dsn(),
        min_size=0,
        max_size=settings.db_pool_max_size,
        timeout=5,
        server_settings={
            "statement_timeout": str(settings.db_statement_timeout_ms),
            "application_name": "store-publish-gateway",
        },
    )


async def _serve(app: web.Application, settings: Settings) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    site = web.TCPSite(runner, settings.http_host, settings.gateway_http_port)
    await site.start()
    sockets = getattr(site._server, "sockets", None) or []
    port = int(sockets[0].getsockname()[1]) if sockets else settings.gateway_http_port
    return runner, port


async def run_gateway(
    settings: Settings,
    *,
    registry: CollectorRegistry | None = None,
    stop: asyncio.Event | None = None,
    started: asyncio.Event | None = None,
    bound: list[int] | None = None,
) -> None:
    """Serve until `stop` is set. `bound`, when given, receives the port listened on."""
    if settings.jwt_secret is None:
        raise ValueError("JWT_SECRET is required by the gateway")
    registry = registry if registry is not None else CollectorRegistry()
    stop = stop if stop is not None else asyncio.Event()
    async with AsyncExitStack() as stack:
        pool = await stack.enter_async_context(_pool(settings))
        emitter = Emitter(settings)
        follower = OutcomeFollower(settings)
        if not await until_started(emitter.start, stop, waiting="Waiting for Kafka"):
            return
        stack.push_async_callback(emitter.stop)
        if not await until_started(follower.start, stop, waiting="Waiting for the outcomes"):
            return
        stack.push_async_callback(follower.stop)
        gateway = Gateway(
            settings,
            pool,
            emitter,
            follower,
            RateLimiter(settings.gateway_rate_per_user_per_min),
            GatewayMetrics.create(registry),
            registry,
            stop,
        )
        app = web.Application(client_max_size=MAX_BODY_BYTES + 1024)
        app.add_routes(gateway.routes())
        following = asyncio.create_task(follower.run(stop))
        runner, port = await _serve(app, settings)
        log.info("Gateway started", httpPort=port, topic=settings.topic_requests)
        if bound is not None:
            bound.append(port)
        if started is not None:
            started.set()
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({following, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stop.set()
        log.info("Gateway stopping")
        await runner.cleanup()
        await asyncio.gather(following, return_exceptions=True)
        if following.done() and not following.cancelled() and following.exception():
            raise following.exception()  # type: ignore[misc]
        log.info("Gateway stopped")
