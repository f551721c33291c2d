"""The deployment guide's own curl commands, run as written against the gateway: only the
host and the token are this test's (a token minted for a seeded creator)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import asyncpg
import pytest

from ops.runtime.topics import ensure_topics
from schemas.settings import Settings
from tests.fixtures.creators import MakeCreators
from tests.fixtures.gateway import MintToken, StartGateway
from tests.fixtures.processes import StartConsumer
from tests.helpers.support import fetch_value

# Étape 3: Validation Staging, as the guide writes it.
VALIDATION = """\
curl -X POST https://staging.huntaze.com/api/store/publish \\
  -H "Authorization: Bearer STAGING_TOKEN" \\
  -H "Content-Type: application/json" \\
  -d '{"confirmPublish": true}'
"""

# Étape 4: Tests de Charge.
LOAD_TEST = """\
for i in {1..10}; do
  curl -X POST https://staging.huntaze.com/api/store/publish \\
    -H "Authorization: Bearer STAGING_TOKEN" \\
    -H "Content-Type: application/json" \\
    -d '{"confirmPublish": true}' &
done
wait
"""

# Étape 4: Validation Production.
HEALTH = "curl https://api.huntaze.com/health\n"


async def run_as_written(script: str, base_url: str, token: str) -> list[dict[str, object]]:
    """The guide's script with its hosts pointed at the gateway and its token replaced;
    the JSON bodies curl printed, in the order they came."""
    pointed = (
        script.replace("https://staging.huntaze.com", base_url)
        .replace("https://api.huntaze.com", base_url)
        .replace("STAGING_TOKEN", token)
    )
    shell = await asyncio.create_subprocess_exec(
        "bash", "-c", pointed, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(shell.communicate(), timeout=120)
    assert shell.returncode == 0
    text, bodies, decoder, at = out.decode(), [], json.JSONDecoder(), 0
    while at < len(text):
        if text[at].isspace():
            at += 1
            continue
        body, at = decoder.raw_decode(text, at)
        bodies.append(body)
    return bodies


@pytest.fixture
async def gateway_url(
    make_gateway_settings: Callable[..., Settings],
    start_consumer: StartConsumer,
    start_gateway: StartGateway,
) -> str:
    settings = make_gateway_settings()
    await ensure_topics(settings)
    await start_consumer(settings)
    return await start_gateway(settings)


async def test_the_guides_validation_request_publishes_the_callers_store(
    gateway_url: str, make_creators: MakeCreators, mint_token: MintToken, database_url: str
) -> None:
    (creator,) = await make_creators(1)
    (body,) = await run_as_written(VALIDATION, gateway_url, mint_token(creator.user_id))
    print(body)
    assert body["success"] is True
    assert str(body["storeUrl"]).startswith("https://")
    assert body["correlationId"]
    conn = await asyncpg.connect(database_url)
    try:
        status = await conn.fetchval("SELECT status FROM stores WHERE id = $1", creator.store_id)
    finally:
        await conn.close()
    assert status == "published"


async def test_the_guides_load_test_publishes_once_and_answers_nine_already_published(
    gateway_url: str, make_creators: MakeCreators, mint_token: MintToken, database_url: str
) -> None:
    (creator,) = await make_creators(1)
    bodies = await run_as_written(LOAD_TEST, gateway_url, mint_token(creator.user_id))
    print(bodies)
    assert len(bodies) == 10
    assert sum(1 for b in bodies if b.get("success") is True) == 1
    assert sum(1 for b in bodies if b.get("error") == "Store already published") == 9
    published = await fetch_value(
        database_url, "SELECT count(*) FROM onboarding_events WHERE event_type = 'store.published'"
    )
    assert published == 1


async def test_the_guides_health_check_answers_ok(gateway_url: str) -> None:
    (body,) = await run_as_written(HEALTH, gateway_url, "unused")
    assert body["status"] == "ok"
