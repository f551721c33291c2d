"""Every row of the front door's table against the real pipeline, and what never reaches it:
refused tokens, unknown fields, oversized bodies, a user over their rate."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import asyncpg
import pytest
from structlog.testing import capture_logs

from tests.fixtures.creators import MakeCreators
from tests.fixtures.gateway import ROUTE, Front, StartFront
from tests.helpers.locks import HeldLock, step_definitions_locked, stores_locked
from tests.helpers.support import Creator


@pytest.fixture
async def front(start_front: StartFront) -> Front:
    return await start_front(gateway_rate_per_user_per_min=30, db_lock_timeout_ms=100)


async def test_published_is_200_with_its_headers(front: Front, make_creators: MakeCreators) -> None:
    (creator,) = await make_creators(1)
    status, body, headers = await front.post(creator, **{"X-Correlation-Id": "guide-check-1"})
    assert status == 200
    assert body["success"] is True
    assert body["correlationId"] == "guide-check-1"
    assert headers["X-Correlation-Id"] == "guide-check-1"
    assert headers["Cache-Control"] == "no-store, must-revalidate"


async def test_gated_is_409_precondition_required(
    front: Front, make_creators: MakeCreators
) -> None:
    (creator,) = await make_creators(1, done=())
    status, body, _ = await front.post(creator)
    assert status == 409
    assert body["error"] == "PRECONDITION_REQUIRED"
    assert body["missingStep"] == "payments"
    assert body["missingSteps"] == ["payments"]
    assert body["action"] == {
        "type": "open_modal",
        "modal": "payments_setup",
        "prefill": {"returnUrl": ROUTE, "userId": str(creator.user_id)},
    }


async def test_already_published_is_409(front: Front, make_creators: MakeCreators) -> None:
    (creator,) = await make_creators(1, published=True)
    status, body, _ = await front.post(creator)
    assert (status, body["error"]) == (409, "Store already published")


async def test_not_confirmed_is_400_saying_confirm_publish_must_be_true(
    front: Front, make_creators: MakeCreators
) -> None:
    (creator,) = await make_creators(1)
    for body in (b"", b"{}", b'{"confirmPublish": false}'):
        status, answer, _ = await front.post(creator, body)
        assert status == 400
        assert answer["error"] == "Invalid request body"
        assert "confirmPublish must be true" in str(answer["details"])


@pytest.mark.parametrize(
    "body",
    [
        b'{"confirmPublish": true, "storeId": "someone-elses"}',
        b'{"confirmPublish": "true"}',
        b'{"notifyCustomers": 1, "confirmPublish": true}',
        b"[true]",
    ],
)
async def test_a_body_not_of_the_schema_is_400_invalid_request_body(
    front: Front, make_creators: MakeCreators, body: bytes
) -> None:
    (creator,) = await make_creators(1)
    status, answer, _ = await front.post(creator, body)
    assert (status, answer["error"]) == (400, "Invalid request body")
    assert answer["details"]


async def test_unreadable_json_is_400_invalid_json(
    front: Front, make_creators: MakeCreators
) -> None:
    (creator,) = await make_creators(1)
    status, answer, _ = await front.post(creator, b'{"confirmPublish": tru')
    assert (status, answer["error"]) == (400, "Invalid JSON in request body")


async def test_an_oversized_body_is_refused_unread(
    front: Front, make_creators: MakeCreators
) -> None:
    (creator,) = await make_creators(1)
    status, answer, _ = await front.post(
        creator, b'{"confirmPublish": true, "x": "' + b"a" * 100_000 + b'"}'
    )
    assert (status, answer["error"]) == (413, "Invalid request body")


async def test_refused_tokens_are_401_and_logged_unauthorized_without_the_token(
    front: Front, make_creators: MakeCreators
) -> None:
    (creator,) = await make_creators(1)
    user = creator.user_id
    tokens = {
        "expired": front.mint(user, exp=int(time.time()) - 60),
        "forged": front.mint(user, secret="not-the-gateways-secret-" + "x" * 48),
        "alg none": front.mint(user, secret="", algorithm="none"),
        "HS512": front.mint(user, algorithm="HS512"),
        "no exp": front.mint(user, exp=None),
    }
    with capture_logs() as logs:
        for name, token in tokens.items():
            status, body, _ = await front.post(creator, Authorization=f"Bearer {token}")
            assert (name, status, body["error"]) == (name, 401, "Unauthorized")
        status, body, _ = await front.post(creator, Authorization="")
        assert status == 401
    refused = [line for line in logs if line["event"] == "Unauthorized"]
    assert len(refused) == len(tokens) + 1
    assert not any(token in str(logs) for token in tokens.values())


async def test_a_token_for_no_known_user_is_401(front: Front) -> None:
    status, body, _ = await front.post(uuid.uuid4())
    assert (status, body["error"]) == (401, "Unauthorized")


async def test_a_user_without_a_store_is_404(front: Front, database_url: str) -> None:
    user = uuid.uuid4()
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("INSERT INTO users (id, email) VALUES ($1, 'x@example.com')", user)
    finally:
        await conn.close()
    status, body, _ = await front.post(user)
    assert (status, body["error"]) == (404, "Store not found")


Lock = Callable[[str, Creator], AbstractAsyncContextManager[HeldLock]]


@pytest.mark.parametrize(
    ("lock", "status", "error", "detail"),
    [
        pytest.param(
            lambda url, _: step_definitions_locked(url),
            503,
            "Gating unavailable",
            None,
            id="gating that cannot be evaluated is 503",
        ),
        pytest.param(
            lambda url, creator: stores_locked(url, [creator.store_id]),
            500,
            "Failed to publish store",
            "retries_exhausted",
            id="a store locked past the retries is 500 failed to publish",
        ),
    ],
)
async def test_a_database_fault_past_the_retries_answers_its_row(
    front: Front,
    make_creators: MakeCreators,
    database_url: str,
    lock: Lock,
    status: int,
    error: str,
    detail: str | None,
) -> None:
    (creator,) = await make_creators(1)
    async with lock(database_url, creator):
        answered, body, _ = await front.post(creator)
    assert (answered, body["error"]) == (status, error)
    if detail is not None:
        assert detail in str(body["details"])


async def test_past_the_rate_a_user_gets_429_with_retry_after(
    front: Front, make_creators: MakeCreators
) -> None:
    (creator,) = await make_creators(1)
    codes = [(await front.post(creator, b"{]"))[0] for _ in range(30)]
    assert codes == [400] * 30
    status, body, headers = await front.post(creator)
    assert (status, body["error"]) == (429, "Too many requests")
    assert int(headers["Retry-After"]) >= 1
