"""Pipelined polls interrupted between their two steps, against the real broker and database.

While poll N's Kafka transaction commits, poll N+1 is decided in PostgreSQL. Here N's commit
is interrupted once N+1 is decided (`tests.helpers.interrupted_consumer`): the commit fails,
the producer is fenced, the process is SIGKILLed, or it is SIGTERMed with both polls in
flight. Then a consumer runs to the end, and the accounting must be exact: every request one
final outcome, no store published twice, nothing lost, no dead letter that is not a refusal.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from schemas.settings import Settings
from tests.fixtures.processes import ConsumerProcessFactory
from tests.fixtures.settings import MakeSettingsWithTopics
from tests.helpers.accounting import every_request_once
from tests.helpers.workload import decided, seed_and_send, wait_until_committed

ROOT = Path(__file__).resolve().parents[2]
REQUESTS = 1_200
AT = 3  # the third Kafka transaction: polls before it committed, polls after it to come


def interrupted(settings: Settings, mode: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.helpers.interrupted_consumer", mode, str(AT)],
            env=settings.child_environment(),
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


def injected_line(log: Path) -> dict[str, object] | None:
    for raw in log.read_text(errors="replace").splitlines():
        if raw.startswith('{"injected"'):
            line = json.loads(raw)
            return line if isinstance(line, dict) else None
    return None


async def injected(log: Path, wait_s: float = 60.0) -> dict[str, object]:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if (line := injected_line(log)) is not None:
            return line
        await asyncio.sleep(0.05)
    raise AssertionError(f"nothing injected: {tail(log)}")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("mode", ["fail", "fence", "kill", "term"])
async def test_an_interrupted_commit_with_the_next_poll_decided_loses_and_repeats_nothing(
    make_settings_with_topics: MakeSettingsWithTopics,
    database_url: str,
    tmp_path: Path,
    consumer_process: ConsumerProcessFactory,
    mode: str,
) -> None:
    # Small polls, so the interrupted one has polls before and after it.
    settings = await make_settings_with_topics(consumer_max_batch=50)
    sent = await seed_and_send(settings, database_url, creators=300, requests=REQUESTS)
    log = tmp_path / "interrupted.log"
    first = interrupted(settings, mode, log)
    try:
        line = await injected(log)
        if mode in ("fail", "fence"):
            # It carries on: both polls are handed back and redone, idempotently.
            await wait_until_committed(settings, sent, wait_s=120)
            first.send_signal(signal.SIGTERM)
            assert first.wait(timeout=30) == 0
        elif mode == "kill":
            assert first.wait(timeout=30) == -9
        else:
            # SIGTERM with both polls in flight: it stops, with exit 0, within its grace.
            assert first.wait(timeout=15) == 0, tail(log)
    finally:
        if first.poll() is None:
            first.kill()
    # N+1 was decided while N was committing, and the consumer saw what was done to N.
    assert int(str(line["decided_after"])) > int(str(line["decided_before"])), line
    seen = {
        "fail": "Kafka transaction failed, batch handed back",
        "fence": "Producer fenced, partition taken over",
    }
    if mode in seen:
        assert seen[mode] in log.read_text(errors="replace"), tail(log)
    at_restart = await decided(database_url)
    if mode in ("kill", "term"):
        # The rest, and whatever the first left decided but uncommitted, by a new process.
        second = consumer_process(settings, "second")
        second.start()
        try:
            await wait_until_committed(settings, sent, wait_s=120)
        finally:
            assert second.terminate() == 0
    books = await every_request_once(
        settings,
        database_url,
        sent=sent,
        title=f"commit {AT} interrupted ({mode}): {line}; {at_restart} decided after",
    )
    if mode in seen:
        # One process did it all: the runbook's gated line once per gated outcome committed,
        # none for the polls handed back and redone.
        gated_lines = log.read_text(errors="replace").count('"message":"Gating check blocked"')
        assert gated_lines == books.statuses["gated"] > 0, (gated_lines, books.statuses)
