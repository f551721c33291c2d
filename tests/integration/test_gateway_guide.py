"""The deployment guide's own curl commands, run as written against the gateway: only the
host and the token are this test's (a token minted for a seeded creator)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from ops.runtime.topics import ensure_topics
from schemas.settings import Settings
from tests.fixtures.creators import MakeCreators
from tests.fixtures.gateway import MintToken, StartGateway
from tests.fixtures.processes import StartConsumer
from tests.helpers.openapi_check import check
from tests.helpers.support import Creator, fetch_value

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


# A person checking these commands reads each answer's status and headers (`curl -i`). The
# test asks curl for them in its own JSON, through a curl config file (CURL_HOME), so the
# guide's commands run exactly as written: each body to a file of its own (ten curls at once
# would interleave their bodies on one stdout) and one line per answer on stdout.
DESCRIBED = (
    '{"method": "%{method}", "url": "%{url_effective}", "status": %{response_code}, '
    '"headers": %{header_json}, "body": "%{filename_effective}"}\n'
)


def curlrc(answers: Path) -> str:
    """The config file: a quoted value in it takes backslash escapes."""
    written = DESCRIBED.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'output-dir = "{answers}"\nremote-name-all\nno-clobber\nwrite-out = "{written}"\n'


@dataclass(frozen=True)
class Answered:
    method: str
    url: str
    status: int
    headers: dict[str, str]
    raw: bytes

    def json(self) -> dict[str, object]:
        body: dict[str, object] = json.loads(self.raw)
        return body


def answers_in(out: str) -> list[Answered]:
    """The answers curl described on stdout, one JSON object each, with their bodies."""
    found, decoder, at = [], json.JSONDecoder(), 0
    while at < len(out):
        if out[at].isspace():
            at += 1
            continue
        meta, at = decoder.raw_decode(out, at)
        # header_json gives each header's values as a list (a header may repeat).
        headers = {name: ", ".join(values) for name, values in meta["headers"].items()}
        raw = Path(meta["body"]).read_bytes()
        found.append(Answered(meta["method"], meta["url"], meta["status"], headers, raw))
    return found


async def run_as_written(script: str, base_url: str, token: str, curl_home: Path) -> list[Answered]:
    """The guide's script with its hosts pointed at the gateway and its token replaced;
    every answer curl got, in the order they came, each checked against the gateway's
    OpenAPI document."""
    pointed = (
        script.replace("https://staging.huntaze.com", base_url)
        .replace("https://api.huntaze.com", base_url)
        .replace("STAGING_TOKEN", token)
    )
    answers = curl_home / "answers"
    answers.mkdir()
    (curl_home / ".curlrc").write_text(curlrc(answers), encoding="utf-8")
    shell = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        pointed,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "CURL_HOME": str(curl_home)},
    )
    out, _ = await asyncio.wait_for(shell.communicate(), timeout=120)
    assert shell.returncode == 0
    answered = answers_in(out.decode())
    assert len(answered) == len(list(answers.iterdir())), "an answer curl did not describe"
    for answer in answered:
        check(answer.method, answer.url, answer.status, answer.headers, answer.raw)
    return answered


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


RunGuide = Callable[[str], Awaitable[tuple[Creator, list[Answered]]]]


@pytest.fixture
def run_guide(
    gateway_url: str, make_creators: MakeCreators, mint_token: MintToken, tmp_path: Path
) -> RunGuide:
    """Runs the guide's `script` as written, as a creator of its own: the creator, the answers."""

    async def run(script: str) -> tuple[Creator, list[Answered]]:
        (creator,) = await make_creators(1)
        token = mint_token(creator.user_id)
        answers = await run_as_written(script, gateway_url, token, tmp_path)
        print(answers)
        return creator, answers

    return run


async def test_the_guides_validation_request_publishes_the_callers_store(
    run_guide: RunGuide, database_url: str
) -> None:
    creator, (answer,) = await run_guide(VALIDATION)
    body = answer.json()
    assert answer.status == 200
    assert body["success"] is True
    assert str(body["storeUrl"]).startswith("https://")
    assert answer.headers["x-correlation-id"] == body["correlationId"]
    status = await fetch_value(
        database_url, "SELECT status FROM stores WHERE id = $1", creator.store_id
    )
    assert status == "published"


async def test_the_guides_load_test_publishes_once_and_answers_nine_already_published(
    run_guide: RunGuide, database_url: str
) -> None:
    _creator, answers = await run_guide(LOAD_TEST)
    assert sorted(a.status for a in answers) == [200] + [409] * 9
    assert sum(1 for a in answers if a.json().get("success") is True) == 1
    assert sum(1 for a in answers if a.json().get("error") == "Store already published") == 9
    published = await fetch_value(
        database_url, "SELECT count(*) FROM onboarding_events WHERE event_type = 'store.published'"
    )
    assert published == 1


async def test_the_guides_health_check_answers_ok(gateway_url: str, tmp_path: Path) -> None:
    (answer,) = await run_as_written(HEALTH, gateway_url, "unused", tmp_path)
    assert (answer.status, answer.json()["status"]) == (200, "ok")
