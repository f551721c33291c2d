"""Schemathesis against the real gateway, consumer, broker and database, from the committed
OpenAPI document: bounded in examples and time, it finds no server error, no answer outside
the document and no crash, and every request the gateway emitted has exactly one outcome.
Its stateful phase follows the document's links, so the poll route is reached with the ids
of requests the gateway really accepted, not only with unknown ones."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path

from tests.fixtures.creators import MakeCreators
from tests.fixtures.gateway import StartFront
from tests.helpers.openapi_check import checked_session
from tests.helpers.support import outcomes_of, read_topic

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
MAX_EXAMPLES = 50
MAX_TIME_S = 45
# The route label of the poll in the gateway's answers counter.
POLL = "poll"
# Schemathesis' own link inference (from `Location`) off: the links it follows are the
# document's, which is what this test shows reachable.
CONFIG = """\
[phases.stateful]
max-steps = 6

[phases.stateful.inference]
algorithms = []
"""


def answers_by_route(metrics: str) -> dict[str, Counter[str]]:
    """The gateway's answers counter: route -> status -> count."""
    seen: dict[str, Counter[str]] = {}
    for found in re.finditer(r"^store_publish_gateway_answers_total\{(.*)\} (\S+)$", metrics, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', found.group(1)))
        seen.setdefault(labels["route"], Counter())[labels["code"]] += int(float(found.group(2)))
    return seen


async def test_schemathesis_finds_nothing_outside_the_description_and_every_request_one_outcome(
    start_front: StartFront, make_creators: MakeCreators, tmp_path: Path
) -> None:
    # A short wait: some POSTs are decided within it (200, 400, 409 ...), the others answer
    # 202 with the requestId the poll link carries, so the poll meets pending and decided ids.
    front = await start_front(gateway_rate_per_user_per_min=100_000, gateway_wait_ms=20)
    settings, url = front.settings, front.url
    (creator,) = await make_creators(1)
    token = front.mint(creator.user_id, exp=int(time.time()) + 900)
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG, encoding="utf-8")
    started = time.monotonic()
    run = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS),
        f"--config-file={config}",
        "run",
        f"{url}/openapi.json",
        "--checks=all",
        # A schema-valid body may still be refused by a business rule: `confirmPublish: false`
        # is the contract's 400 / not_confirmed, documented, decided by the consumer.
        "--exclude-checks=positive_data_acceptance",
        "--phases=coverage,fuzzing,stateful",
        "--mode=positive",
        f"--max-examples={MAX_EXAMPLES}",
        f"--max-time={MAX_TIME_S}",
        "--seed=26",
        "--workers=1",
        "--request-timeout=15",
        f"--header=Authorization: Bearer {token}",
        f"--report-dir={tmp_path}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={"NO_COLOR": "1", "PATH": str(SCHEMATHESIS.parent)},
    )
    output, _ = await asyncio.wait_for(run.communicate(), timeout=MAX_TIME_S + 60)
    seconds = time.monotonic() - started
    text = output.decode(errors="replace")
    print(text)
    assert run.returncode == 0, "schemathesis found a failure (above)"
    # The stateful phase ran and followed every link the document has.
    links = re.search(r"API Links:\s+(\d+) covered / (\d+) selected / (\d+) total", text)
    assert links is not None, "no stateful phase ran"
    assert links.group(1) == links.group(3) != "0", links.group(0)
    scenarios = re.search(r"Scenarios:\s+(\d+)", text)

    async with checked_session() as http, http.get(f"{url}/metrics") as answer:
        metrics = await answer.text()
    by_route = answers_by_route(metrics)
    seen = sum(by_route.values(), Counter[str]())
    cases = re.search(r"Test cases:\s*(.*)", text)
    print(
        f"schemathesis: test cases {cases.group(1) if cases else '?'}, stateful scenarios "
        f"{scenarios.group(1) if scenarios else '?'}, {' '.join(links.group(0).split())}; "
        f"{seen.total()} answers "
        f"{dict(sorted(seen.items()))} in {seconds:.1f} s; by route "
        + "; ".join(f"{route} {dict(sorted(c.items()))}" for route, c in sorted(by_route.items()))
    )
    assert not [status for status in seen if status.startswith("5") and status != "503"]
    # Polls of ids the gateway accepted: pending or published or already published, which
    # an unknown id (404) or a malformed one (400) never is.
    polled = by_route.get(POLL, Counter())
    assert polled["202"] + polled["200"] + polled["409"] > 0, polled

    requests = await read_topic(settings, settings.topic_requests, expect=10**6, wait_s=3)
    emitted = [json.loads(record.value or b"")["event_id"] for record in requests]
    outcomes = outcomes_of(
        await read_topic(settings, settings.topic_outcomes, expect=len(emitted), wait_s=60)
    )
    print(f"accounting: {len(emitted)} requests emitted, {len(outcomes)} outcomes")
    assert Counter(str(o.request_event_id) for o in outcomes) == Counter(emitted)
