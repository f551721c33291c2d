"""PublishRequested built in one place: every request this project sends starts here (the
gateway, emit, the demo, the bench and the tests).

The model validates what it is given, so a request built here is one the contract accepts;
`request_value` gives the bytes a producer sends (absent optional fields left out, as an
upstream service writes them). A caller that wants a bad request starts from a good one's
`model_dump(mode="json")` and changes fields.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from schemas.events import PublishRequested


def publish_request(
    user_id: uuid.UUID,
    store_id: uuid.UUID,
    *,
    event_id: uuid.UUID | None = None,
    occurred_at: datetime | None = None,
    correlation_id: str | None = None,
    confirm_publish: bool = True,
    notify_customers: bool = False,
) -> PublishRequested:
    """A request by `user_id` to publish `store_id`, occurring now unless told otherwise."""
    return PublishRequested(
        event_id=event_id or uuid.uuid4(),
        schema_version=1,
        occurred_at=occurred_at or datetime.now(UTC),
        correlation_id=correlation_id,
        user_id=user_id,
        store_id=store_id,
        confirm_publish=confirm_publish,
        notify_customers=notify_customers,
    )


def request_fields(request: PublishRequested) -> dict[str, object]:
    """The request as the JSON object on the wire, to change before encoding it."""
    return request.model_dump(mode="json", exclude_none=True)


def request_value(request: PublishRequested) -> bytes:
    """The record value of `request`: its JSON, UTF-8."""
    return request.model_dump_json(exclude_none=True).encode("utf-8")


def request_key(store_id: uuid.UUID) -> bytes:
    """The record key the contract gives a request: its store id, so one store's requests
    keep their order in one partition."""
    return str(store_id).encode()
