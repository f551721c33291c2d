"""The gateway's bearer tokens: HS256 under JWT_SECRET, `sub` the user id, `exp` required;
anything else is refused, and the refusal never carries the token."""

from __future__ import annotations

import base64
import json
import time
import uuid

import jwt
import pytest

from ops.gateway.auth import Refused, authenticate

SECRET = "a-test-secret-long-enough-for-every-hmac-algorithm-pyjwt-knows-0123456789"
USER = uuid.uuid4()


def token(secret: str = SECRET, algorithm: str = "HS256", **claims: object) -> str:
    body: dict[str, object] = {"sub": str(USER), "exp": int(time.time()) + 300}
    body.update(claims)
    return jwt.encode({k: v for k, v in body.items() if v is not None}, secret, algorithm)


def unsigned(**claims: object) -> str:
    def part(value: dict[str, object]) -> str:
        raw = json.dumps(value).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    body = {"sub": str(USER), "exp": int(time.time()) + 300, **claims}
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(body)}."


def test_a_valid_token_names_its_subject_as_the_caller() -> None:
    assert authenticate(f"Bearer {token()}", SECRET) == USER


def test_the_scheme_is_case_insensitive_as_http_says() -> None:
    assert authenticate(f"bearer {token()}", SECRET) == USER


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "no bearer token"),
        ("", "no bearer token"),
        ("Basic dXNlcjpwYXNz", "not a bearer token"),
        ("Bearer", "not a bearer token"),
    ],
)
def test_a_missing_or_other_scheme_is_refused(header: str | None, reason: str) -> None:
    assert authenticate(header, SECRET) == Refused(reason)


def test_an_expired_token_is_refused() -> None:
    found = authenticate(f"Bearer {token(exp=int(time.time()) - 60)}", SECRET)
    assert found == Refused("token expired")


def test_a_token_signed_under_another_secret_is_refused() -> None:
    found = authenticate(f"Bearer {token(secret=SECRET[::-1])}", SECRET)
    assert found == Refused("bad token signature")


def test_alg_none_is_refused() -> None:
    found = authenticate(f"Bearer {unsigned()}", SECRET)
    assert isinstance(found, Refused)


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_other_algorithms_are_refused_even_under_the_right_secret(algorithm: str) -> None:
    found = authenticate(f"Bearer {token(algorithm=algorithm)}", SECRET)
    assert found == Refused("token algorithm not allowed")


@pytest.mark.parametrize("claim", ["exp", "sub"])
def test_exp_and_sub_are_required(claim: str) -> None:
    found = authenticate(f"Bearer {token(**{claim: None})}", SECRET)
    assert found == Refused(f"token lacks the {claim} claim")


def test_a_subject_that_is_not_a_user_id_is_refused() -> None:
    assert authenticate(f"Bearer {token(sub='admin')}", SECRET) == Refused(
        "token subject is not a user id"
    )


@pytest.mark.parametrize("garbage", ["x", "a.b.c", "....", "é.é.é"])
def test_garbage_is_refused_and_the_refusal_never_repeats_it(garbage: str) -> None:
    found = authenticate(f"Bearer {garbage}", SECRET)
    assert isinstance(found, Refused)
    assert garbage not in found.reason
