"""The caller, from the bearer token: HS256 under JWT_SECRET, `sub` the user id, `exp` required.

Tokens are checked by PyJWT with one algorithm allowed, so `alg: none`, RS256 and any other
header are refused before the signature is even looked at. The token never leaves here: a
refusal says why in a few words, never what the token was.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import jwt

ALGORITHMS = ["HS256"]
_SCHEME = "bearer"
# A few seconds of clock difference between the issuer and this host.
_LEEWAY_S = 5


@dataclass(frozen=True)
class Refused:
    """Why a caller was not authenticated, fit for a log line (no token in it)."""

    reason: str


def authenticate(authorization: str | None, secret: str) -> uuid.UUID | Refused:
    """The user id the `Authorization` header proves, or why it proves none."""
    if not authorization:
        return Refused("no bearer token")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != _SCHEME or not token:
        return Refused("not a bearer token")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=ALGORITHMS,
            options={"require": ["exp", "sub"]},
            leeway=_LEEWAY_S,
        )
    except jwt.ExpiredSignatureError:
        return Refused("token expired")
    except jwt.InvalidSignatureError:
        return Refused("bad token signature")
    except jwt.InvalidAlgorithmError:
        return Refused("token algorithm not allowed")
    except jwt.MissingRequiredClaimError as error:
        return Refused(f"token lacks the {error.claim} claim")
    except jwt.InvalidTokenError as error:
        return Refused(f"invalid token ({type(error).__name__})")
    try:
        return uuid.UUID(str(claims["sub"]))
    except ValueError:
        return Refused("token subject is not a user id")
