"""The gateway's routes: `POST /api/store/publish`, `GET /api/store/publish/{requestId}`,
`/openapi.json` (their description), `/health` and `/metrics`. Each handler reads like the
original endpoint: who is calling, what they ask, whose store, then the pipeline's answer
(answers.py says which)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog
from aiohttp import web
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, StatusCode, Tracer

from ops.gateway import answers
from ops.gateway.answers import Answer
from ops.gateway.auth import Refused, authenticate
from ops.gateway.body import MAX_BODY_BYTES, Invalid, Unreadable, parse_body
from ops.gateway.emitter import Emitter, request_id_for
from ops.gateway.lookup import find_caller, recorded_outcome
from ops.gateway.metrics import GatewayMetrics
from ops.gateway.openapi import OPENAPI_PATH, OPENAPI_ROUTE
from ops.gateway.rate import RateLimiter
from ops.gateway.waiting import OutcomeFollower
from ops.runtime.faults import DATABASE_ERRORS, describe
from ops.runtime.tracing import extract_http
from schemas.events import PublishOutcome, Status
from schemas.requests import publish_request
from schemas.settings import Settings

log = structlog.get_logger("ops.gateway")

_MAX_KEY_CHARS = 255
_MAX_CORRELATION_CHARS = 128


def correlation_id_of(request: web.Request) -> str:
    """The caller's `X-Correlation-Id` when it fits the contract's field, else a new one."""
    given = request.headers.get("X-Correlation-Id", "").strip()
    if 0 < len(given) <= _MAX_CORRELATION_CHARS and "\x00" not in given:
        return given
    return str(uuid.uuid4())


def respond(answer: Answer) -> web.Response:
    return web.json_response(answer.body, status=answer.status, headers=answer.headers)


@dataclass
class Gateway:
    settings: Settings
    pool: asyncpg.Pool
    emitter: Emitter
    follower: OutcomeFollower
    limiter: RateLimiter
    metrics: GatewayMetrics
    stop: asyncio.Event
    tracer: Tracer | None = None

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(answers.ROUTE, self.publish),
            web.get(answers.ROUTE + "/{request_id}", self.poll),
            web.get(OPENAPI_ROUTE, self.openapi),
        ]

    async def openapi(self, _request: web.Request) -> web.Response:
        """The committed description of these routes, as the contract tools checked it."""
        return web.Response(body=OPENAPI_PATH.read_bytes(), content_type="application/json")

    def _secret(self) -> str:
        assert self.settings.jwt_secret is not None, "checked at start"
        return self.settings.jwt_secret.get_secret_value()

    def _caller(self, request: web.Request) -> uuid.UUID | None:
        found = authenticate(request.headers.get("Authorization"), self._secret())
        if isinstance(found, Refused):
            log.warning("Unauthorized", reason=found.reason, path=request.path)
            return None
        return found

    async def publish(self, request: web.Request) -> web.Response:
        return await self._answer("publish", self._publish, request)

    async def poll(self, request: web.Request) -> web.Response:
        return await self._answer("poll", self._poll, request)

    async def _answer(
        self,
        route: str,
        handle: Callable[[web.Request, str], Awaitable[Answer]],
        request: web.Request,
    ) -> web.Response:
        """Every route's frame: the correlation id bound to its log lines, timed, observed."""
        started = time.monotonic()
        cid = correlation_id_of(request)
        with (
            structlog.contextvars.bound_contextvars(correlationId=cid),
            self._span(request, cid) as span,
        ):
            answer = await handle(request, cid)
            if span is not None:
                span.set_attribute("http.response.status_code", answer.status)
                if answer.status >= 500:
                    span.set_status(StatusCode.ERROR)
            self._observe(route, answer, started)
            return respond(answer)

    @contextmanager
    def _span(self, request: web.Request, cid: str) -> Iterator[Span | None]:
        """The request's server span, continuing the caller's `traceparent` or starting a
        trace; current while the request is handled, so the send carries it to Kafka and
        the log lines carry its `traceId`. None when tracing is off."""
        if self.tracer is None:
            yield None
            return
        template = request.match_info.route.resource
        path = template.canonical if template is not None else request.path
        with self.tracer.start_as_current_span(
            f"{request.method} {path}",
            context=extract_http(request.headers),
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": request.method,
                "http.route": path,
                "url.path": request.path,
                "store_publish.correlation_id": cid,
            },
        ) as span:
            yield span

    async def _publish(self, request: web.Request, cid: str) -> Answer:
        user_id = self._caller(request)
        if user_id is None:
            return answers.unauthorized(cid)
        retry_after = self.limiter.take(user_id)
        if retry_after is not None:
            log.warning("Too many requests", retryAfter=retry_after)
            return answers.too_many_requests(cid, retry_after)
        if (request.content_length or 0) > MAX_BODY_BYTES:
            return answers.body_too_large(cid, MAX_BODY_BYTES)
        raw = await request.content.read(MAX_BODY_BYTES + 1)
        if len(raw) > MAX_BODY_BYTES:
            return answers.body_too_large(cid, MAX_BODY_BYTES)
        body = parse_body(raw)
        if isinstance(body, Unreadable):
            return answers.unreadable_json(cid)
        if isinstance(body, Invalid):
            return answers.invalid_body(cid, body.details)
        key = request.headers.get("Idempotency-Key")
        if key is not None and not 0 < len(key) <= _MAX_KEY_CHARS:
            details: answers.Details = [
                {"path": ["Idempotency-Key"], "message": "1 to 255 characters"}
            ]
            return answers.invalid_body(cid, details)
        try:
            caller = await find_caller(self.pool, user_id)
        except DATABASE_ERRORS as error:
            log.error("Store lookup failed", error=describe(error))
            return answers.unavailable(cid)
        if not caller.user_exists:
            log.warning("Unauthorized", reason="no such user")
            return answers.unauthorized(cid)
        if caller.store_id is None:
            return answers.store_not_found(cid)
        request_id = request_id_for(user_id, key)
        earlier = self.follower.decided(request_id)
        if earlier is not None and earlier.status is not Status.FAILED:
            return answers.answer_for(earlier)  # a retried key, answered here already
        publish = publish_request(
            user_id,
            caller.store_id,
            event_id=request_id,
            correlation_id=cid,
            confirm_publish=body.confirm_publish,
            notify_customers=body.notify_customers,
        )
        waiter = self.follower.expect(request_id, user_id)
        try:
            try:
                await self.emitter.send(publish)
            except Exception as error:
                self.follower.withdraw(request_id)
                log.error("Publish request not sent", error=describe(error))
                return answers.unavailable(cid)
            log.info("Publish requested", requestId=str(request_id), storeId=str(caller.store_id))
            if caller.paused or "respond-async" in request.headers.get("Prefer", ""):
                return answers.pending(request_id, cid)
            return await self._wait(request_id, waiter, cid)
        finally:
            self.follower.release(request_id, waiter)

    async def _wait(
        self, request_id: uuid.UUID, waiter: asyncio.Future[PublishOutcome], cid: str
    ) -> Answer:
        stopping = asyncio.ensure_future(self.stop.wait())
        either: set[asyncio.Future[Any]] = {waiter, stopping}
        try:
            await asyncio.wait(
                either,
                timeout=self.settings.gateway_wait_ms / 1000,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            stopping.cancel()
        if waiter.done():
            outcome = waiter.result()
            trace.get_current_span().add_event(
                "outcome received",
                {"store_publish.status": outcome.status.value},
            )
            return answers.answer_for(outcome)
        log.info(
            "Outcome wait timeout: answered pending",
            requestId=str(request_id),
            waitMs=self.settings.gateway_wait_ms,
        )
        return answers.pending(request_id, cid)

    async def _poll(self, request: web.Request, cid: str) -> Answer:
        user_id = self._caller(request)
        if user_id is None:
            return answers.unauthorized(cid)
        try:
            request_id = uuid.UUID(request.match_info["request_id"])
        except ValueError:
            return answers.unknown_request(cid)
        outcome = self.follower.decided(request_id)
        if outcome is not None and outcome.user_id == user_id:
            return answers.answer_for(outcome)
        if self.follower.pending_for(request_id) == user_id:
            return answers.pending(request_id, cid)
        try:
            outcome = await recorded_outcome(self.pool, request_id, user_id)
        except DATABASE_ERRORS as error:
            log.error("Ledger lookup failed", error=describe(error))
            return answers.unavailable(cid)
        if outcome is None:
            return answers.unknown_request(cid)
        return answers.answer_for(outcome)

    def _observe(self, route: str, answer: Answer, started: float) -> None:
        self.metrics.answers.labels(route, str(answer.status)).inc()
        self.metrics.duration.labels(route).observe(time.monotonic() - started)
        log.info("Store publish answered", route=route, status=answer.status)

    def health(self) -> tuple[bool, Mapping[str, object]]:
        """What `/health` says (served by `ops.runtime.http` with `/metrics`)."""
        ok = not self.stop.is_set()
        return ok, {
            "status": "ok" if ok else "stopping",
            "waiting": self.follower.waiting,
            "outcomesFollowed": self.follower.followed,
        }
