"""The checks made on a record's raw bytes before anything is looked up: size, shape, signature.

Pure: bytes and headers in, a parsed request or a refusal out.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from pydantic import ConfigDict, TypeAdapter, ValidationError

from schemas.events import PublishRequested, Reason
from schemas.signing import SIGNATURE_HEADER, signature_matches


@dataclass(frozen=True)
class Asserted:
    """What a refused request says about itself, each field kept only when valid on its own.

    Never trusted (nothing is looked up with it); it lets the sender join the outcome to the
    request it sent.
    """

    event_id: uuid.UUID | None = None
    correlation_id: str | None = None
    user_id: uuid.UUID | None = None
    store_id: uuid.UUID | None = None
    notify_customers: bool = False
    occurred_at: datetime | None = None

    @classmethod
    def of(cls, request: PublishRequested) -> Asserted:
        return cls(
            request.event_id,
            request.correlation_id,
            request.user_id,
            request.store_id,
            request.notify_customers,
            request.occurred_at,
        )


@dataclass(frozen=True)
class Refusal:
    """A request refused before any lookup. `claimed` is what it names validly, if anything."""

    reason: Reason
    error: str
    claimed: Asserted | None = None


_CLAIMED_FIELDS = (
    "event_id",
    "correlation_id",
    "user_id",
    "store_id",
    "notify_customers",
    "occurred_at",
)


@cache
def _field_adapter(name: str) -> TypeAdapter[Any]:
    # The request model's own annotation, so "valid on its own" means what the model means.
    annotation = PublishRequested.model_fields[name].rebuild_annotation()
    return TypeAdapter(annotation, config=ConfigDict(strict=True))


def claimed_fields(value: bytes) -> Asserted | None:
    """Each field of a JSON object that would be valid in a request; None for any other value."""
    try:
        body = json.loads(value)
    except (ValueError, RecursionError):
        return None
    if not isinstance(body, dict):
        return None
    valid: dict[str, Any] = {}
    for name in _CLAIMED_FIELDS:
        if name not in body:
            continue
        try:
            valid[name] = _field_adapter(name).validate_json(json.dumps(body[name]))
        except (ValidationError, ValueError, RecursionError):
            continue
    return Asserted(**{name: found for name, found in valid.items() if found is not None})


def _describe(error: ValidationError) -> str:
    # Field locations and messages only: the offending input stays in the dead letter's value.
    parts = []
    for detail in error.errors(include_input=False, include_url=False):
        where = ".".join(str(item) for item in detail["loc"]) or "(value)"
        parts.append(f"{where}: {detail['msg']}")
    return "; ".join(parts)


def _signature_header(headers: tuple[tuple[str, bytes], ...]) -> bytes | None:
    found = [value for name, value in headers if name == SIGNATURE_HEADER]
    # Two signature headers is ambiguous: refuse rather than pick one.
    return found[0] if len(found) == 1 else None


def screen(
    value: bytes | None,
    headers: tuple[tuple[str, bytes], ...],
    *,
    max_bytes: int,
    secret: bytes | None,
) -> PublishRequested | Refusal:
    """Size, then parse and validate, then signature: the contract's first three checks."""
    if value is None:
        return Refusal(Reason.INVALID_PAYLOAD, "record has no value")
    if len(value) > max_bytes:
        return Refusal(Reason.TOO_LARGE, f"value is {len(value)} bytes, limit {max_bytes}")
    try:
        request = PublishRequested.model_validate_json(value)
    except ValidationError as error:
        return Refusal(Reason.INVALID_PAYLOAD, _describe(error), claimed_fields(value))
    except (ValueError, RecursionError) as error:
        return Refusal(Reason.INVALID_PAYLOAD, f"unreadable value: {type(error).__name__}")
    if secret is not None:
        given = _signature_header(headers)
        if given is None:
            return Refusal(Reason.BAD_SIGNATURE, "signature header missing", Asserted.of(request))
        if not signature_matches(value, given, secret):
            return Refusal(
                Reason.BAD_SIGNATURE, "signature does not match the value", Asserted.of(request)
            )
    return request
