"""The checks made on a record's raw bytes before anything is looked up: size, shape, signature.

Pure: bytes and headers in, a parsed request or a refusal out.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from schemas.events import PublishRequested, Reason
from schemas.signing import SIGNATURE_HEADER, signature_matches


@dataclass(frozen=True)
class Refusal:
    """A request refused before any lookup. `request` is set when it parsed but is not trusted."""

    reason: Reason
    error: str
    request: PublishRequested | None = None


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
        return Refusal(Reason.INVALID_PAYLOAD, _describe(error))
    except (ValueError, RecursionError) as error:
        return Refusal(Reason.INVALID_PAYLOAD, f"unreadable value: {type(error).__name__}")
    if secret is not None:
        given = _signature_header(headers)
        if given is None:
            return Refusal(Reason.BAD_SIGNATURE, "signature header missing", request)
        if not signature_matches(value, given, secret):
            return Refusal(Reason.BAD_SIGNATURE, "signature does not match the value", request)
    return request
