"""`store-publish demo` end to end on a pair of services of its own (its act 2 stops their
PostgreSQL), at 80 columns: every act's checks pass, no log line on the console, the closing
command on one line, and the whole demo within a generous bound (two minutes is the aim)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.helpers.cli import store_publish
from tests.helpers.services import own_services_env, services_on


@pytest.fixture(scope="module")
def demo_services() -> Iterator[dict[str, str]]:
    # Not the shared pair, nor the fault tests' own: this test stops its PostgreSQL.
    env = own_services_env(
        "demo-test",
        {
            "KAFKA_PORT": os.environ.get("DEMO_TEST_KAFKA_PORT", "19492"),
            "PG_PORT": os.environ.get("DEMO_TEST_PG_PORT", "15832"),
        },
    )
    services = services_on(env)
    services.up()
    try:
        yield {**env, **services.env()}
    finally:
        services.down()


def test_the_demo_tells_its_three_acts_and_every_account_balances(
    demo_services: dict[str, str],
) -> None:
    env = {**demo_services, "COLUMNS": "80", "TERM": "dumb"}
    done = store_publish(env, "demo", "--creators", "2000", "--requests", "1500", timeout=400)
    print(done.out)
    print(done.err[-3000:])
    print(f"demo took {done.seconds:.1f} s")
    assert done.code == 0
    lines = done.out.splitlines()
    assert "MISMATCH" not in done.out
    assert "skipped:" not in done.out
    assert any("act 2: PostgreSQL stopped" in line for line in lines)
    assert any("act 3: a dead letter replayed" in line for line in lines)
    assert any("no outcome while PostgreSQL was down" in line for line in lines)
    assert any("published once after the replay" in line for line in lines)
    assert not any(line.lstrip().startswith("{") for line in lines), "a log line on the console"
    assert "GroupCoordinator" not in done.out
    command = lines[lines.index("inspect this run with:") + 1]
    assert command.endswith("store-publish dlq list")
    assert all(len(line) <= 80 for line in lines if line != command)
    log_path = lines[lines.index("the pipeline's and its libraries' log lines go to:") + 1]
    assert os.path.getsize(log_path) > 0
    assert done.seconds < 240
