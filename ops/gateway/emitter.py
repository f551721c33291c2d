"""The PublishRequested a caller's POST becomes, and its sending: keyed by store id, signed
under EVENT_SIGNING_SECRET when one is set (as every upstream service signs)."""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaProducer
from opentelemetry.trace import SpanKind, Tracer

from ops.runtime.tracing import span_headers
from schemas.events import PublishRequested
from schemas.requests import request_key, request_value
from schemas.settings import Settings
from schemas.signing import signature_headers

# A request's id under an Idempotency-Key is UUID v5 of the user and the key under this
# namespace: the same key from the same user is the same request, from any gateway instance,
# and the same key from another user is another request. Changing it forgets every key.
GATEWAY_NAMESPACE = uuid.UUID("0b6c1f8e-3d52-4f7a-a1c9-5e27d4b8f063")


def request_id_for(user_id: uuid.UUID, idempotency_key: str | None) -> uuid.UUID:
    if idempotency_key is None:
        return uuid.uuid4()
    return uuid.uuid5(GATEWAY_NAMESPACE, f"{user_id}:{idempotency_key}")


class Emitter:
    """One idempotent producer for the process; `send` returns once the broker has it. With
    a tracer, each send is a producer span in the current trace, and the record carries its
    `traceparent`."""

    def __init__(self, settings: Settings, tracer: Tracer | None = None) -> None:
        self._settings = settings
        self._tracer = tracer
        self._secret = settings.signing_key()
        self._producer = AIOKafkaProducer(
            **settings.kafka_client_options(), acks="all", enable_idempotence=True, linger_ms=2
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def send(self, request: PublishRequested) -> None:
        value = request_value(request)
        headers = signature_headers(value, self._secret)
        if self._tracer is None:
            await self._send(value, request, headers)
            return
        topic = self._settings.topic_requests
        with self._tracer.start_as_current_span(
            f"send {topic}",
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "send",
                "messaging.destination.name": topic,
                "messaging.message.id": str(request.event_id),
            },
        ) as span:
            await self._send(value, request, [*headers, *span_headers(span)])

    async def _send(
        self, value: bytes, request: PublishRequested, headers: list[tuple[str, bytes]]
    ) -> None:
        await self._producer.send_and_wait(
            self._settings.topic_requests,
            value=value,
            key=request_key(request.store_id),
            headers=headers,
        )
