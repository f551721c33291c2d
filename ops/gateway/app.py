"""`store-publish gateway`: the one place that builds the gateway's collaborators (the
database pool, the producer, the outcome follower), serves the routes, and stops them.

SIGTERM: new connections are refused, callers still waiting for an outcome are answered 202
with their request id (the request is in Kafka and will be decided), then the clients stop.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import structlog
from opentelemetry.trace import Tracer
from prometheus_client import CollectorRegistry

from ops.gateway.body import MAX_BODY_BYTES
from ops.gateway.emitter import Emitter
from ops.gateway.metrics import GatewayMetrics
from ops.gateway.rate import RateLimiter
from ops.gateway.routes import Gateway
from ops.gateway.waiting import OutcomeFollower
from ops.runtime.database import database_pool
from ops.runtime.http import serve_health_and_metrics
from ops.runtime.waiting import until_started
from schemas.settings import Settings

log = structlog.get_logger("ops.gateway.app")

# Handlers end within this once stop is set (a waiting caller is answered 202 at once).
_SHUTDOWN_TIMEOUT_S = 5.0


async def run_gateway(
    settings: Settings,
    *,
    registry: CollectorRegistry | None = None,
    stop: asyncio.Event | None = None,
    started: asyncio.Event | None = None,
    bound: list[int] | None = None,
    tracer: Tracer | None = None,
) -> None:
    """Serve until `stop` is set. `bound`, when given, receives the port listened on. With a
    `tracer`, each request is a span whose context goes to Kafka with the request."""
    if settings.jwt_secret is None:
        raise ValueError("JWT_SECRET is required by the gateway")
    registry = registry if registry is not None else CollectorRegistry()
    stop = stop if stop is not None else asyncio.Event()
    async with AsyncExitStack() as stack:
        pool = await stack.enter_async_context(database_pool(settings, "gateway"))
        emitter = Emitter(settings, tracer)
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
            stop,
            tracer,
        )
        following = asyncio.create_task(follower.run(stop))
        async with serve_health_and_metrics(
            settings.gateway_http_port,
            registry,
            gateway.health,
            host=settings.http_host,
            routes=gateway.routes(),
            client_max_size=MAX_BODY_BYTES + 1024,
            shutdown_timeout=_SHUTDOWN_TIMEOUT_S,
        ) as port:
            log.info("Gateway started", httpPort=port, topic=settings.topic_requests)
            if bound is not None:
                bound.append(port)
            if started is not None:
                started.set()
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({following, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stop.set()
            log.info("Gateway stopping")
        await asyncio.gather(following, return_exceptions=True)
        if following.done() and not following.cancelled() and following.exception():
            raise following.exception()  # type: ignore[misc]
        log.info("Gateway stopped")
