"""Request authenticity as the contract defines it: the `signature` header is `sha256=` and the
lowercase hex HMAC-SHA256 of the exact value bytes under `EVENT_SIGNING_SECRET`."""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "signature"
SIGNATURE_PREFIX = "sha256="


def sign(value: bytes, secret: bytes) -> str:
    """The `signature` header for `value`."""
    return SIGNATURE_PREFIX + hmac.new(secret, value, hashlib.sha256).hexdigest()


def signature_matches(value: bytes, given: bytes, secret: bytes) -> bool:
    """Whether `given` is the signature of `value`, compared in constant time."""
    return hmac.compare_digest(given, sign(value, secret).encode("ascii"))


def signature_headers(value: bytes, secret: bytes | None) -> list[tuple[str, bytes]]:
    """The headers a request with `value` carries: its signature under `secret`, or none when
    signing is off. Every producer of requests signs through here."""
    if secret is None:
        return []
    return [(SIGNATURE_HEADER, sign(value, secret).encode("ascii"))]
