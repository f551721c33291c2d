"""The PublishRequested a caller's POST becomes, and its sending: keyed by store id, signed
under EVENT_SIGNING_SECRET when one is set (as every upstream service signs)."""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaProducer

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
    """One idempotent producer for the process; `send` returns once the broker has it."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
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
        await self._producer.send_and_wait(
            self._settings.topic_requests,
            value=value,
            key=request_key(request.store_id),
            headers=signature_headers(value, self._secret),
        )
