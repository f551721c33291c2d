"""The request body as the original endpoint took it: optional JSON, strictly
`{"confirmPublish"?: bool, "notifyCustomers"?: bool}`."""

from __future__ import annotations

import json
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationError

# The body has two booleans: anything near this size is not a request of ours.
MAX_BODY_BYTES = 16 * 1024


class PublishBody(BaseModel):
    """Strict, as the original's schema: unknown fields and non-boolean values refused."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    confirm_publish: bool = Field(default=False, alias="confirmPublish")
    notify_customers: bool = Field(default=False, alias="notifyCustomers")


@dataclass(frozen=True)
class Unreadable:
    """Not JSON at all: `Invalid JSON in request body`."""


@dataclass(frozen=True)
class Invalid:
    """JSON, but not the body: `Invalid request body` with these details."""

    details: list[dict[str, object]]


def parse_body(raw: bytes) -> PublishBody | Unreadable | Invalid:
    """What the body asks, or why it cannot be taken. An empty body asks nothing."""
    if not raw.strip():
        return PublishBody()
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return Unreadable()
    if not isinstance(data, dict):
        return Invalid([{"path": [], "message": "the body must be a JSON object"}])
    try:
        return PublishBody.model_validate(data)
    except ValidationError as error:
        return Invalid(
            [
                {"path": [str(part) for part in issue["loc"]], "message": issue["msg"]}
                for issue in error.errors(include_url=False, include_input=False)
            ]
        )
