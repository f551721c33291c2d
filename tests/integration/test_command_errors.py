"""Every `store-publish` command answers a bad setting, a service that does not answer or a
missing file with one line on stderr and its documented exit code (docs/runbook.md, "Exit
codes"), never a traceback. The real commands run as child processes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ops.errors import ExitCode
from tests.helpers.cli import Ran, store_publish

NO_KAFKA = "127.0.0.1:1"
NO_DATABASE = "postgresql://postgres@127.0.0.1:1/x"
# Each command must give up within this; the child is killed a little later.
SECONDS = 20.0


def run(services: dict[str, str], *args: str, **env: str) -> Ran:
    """`store-publish ARGS` with the services' addresses, overridden by `env`."""
    environment = {name: value for name, value in os.environ.items() if name != "LOG_LEVEL"}
    environment.update(services)
    return store_publish(environment, *args, timeout=SECONDS + 10, **env)


def one_line(ran: Ran, code: ExitCode, *parts: str) -> str:
    assert ran.code == code, (ran.code, ran.out, ran.err)
    assert "Traceback" not in ran.err + ran.out
    lines = ran.err.splitlines()
    assert len(lines) == 1, ran.err
    assert ran.err.endswith("\n")
    for part in parts:
        assert part in lines[0], lines[0]
    assert ran.seconds < SECONDS
    return lines[0]


@pytest.mark.parametrize(
    "args", [("consume",), ("stream",), ("migrate",), ("emit", "-"), ("status",)]
)
def test_a_bad_setting_exits_2_naming_the_variable(
    services: dict[str, str], args: tuple[str, ...]
) -> None:
    ran = run(services, *args, MAX_EVENT_BYTES="abc")
    one_line(ran, ExitCode.BAD_ARGUMENTS, "invalid configuration", "MAX_EVENT_BYTES")


@pytest.mark.parametrize("args", [("migrate",), ("emit", "-")])
def test_an_unreachable_broker_exits_4(services: dict[str, str], args: tuple[str, ...]) -> None:
    ran = run(services, *args, KAFKA_BOOTSTRAP_SERVERS=NO_KAFKA)
    one_line(ran, ExitCode.UNREACHABLE, f"Kafka unreachable at {NO_KAFKA}")


@pytest.mark.parametrize("args", [("migrate",), ("status",)])
def test_an_unreachable_database_exits_4(services: dict[str, str], args: tuple[str, ...]) -> None:
    ran = run(services, *args, DATABASE_URL=NO_DATABASE)
    line = one_line(ran, ExitCode.UNREACHABLE, "PostgreSQL unreachable", "DATABASE_URL")
    assert "postgres@" not in line  # the URL may carry a password: never printed


def test_a_missing_file_for_emit_is_one_line(services: dict[str, str], tmp_path: Path) -> None:
    absent = tmp_path / "absent.jsonl"
    ran = run(services, "emit", str(absent), KAFKA_BOOTSTRAP_SERVERS=NO_KAFKA)
    # Named before any service is asked: the unreachable broker is not what is reported.
    one_line(ran, ExitCode.BAD_ARGUMENTS, "No such file", str(absent))


def test_debug_logging_adds_the_traceback_and_keeps_the_code(services: dict[str, str]) -> None:
    ran = run(services, "migrate", MAX_EVENT_BYTES="abc", LOG_LEVEL="DEBUG")
    assert ran.code == ExitCode.BAD_ARGUMENTS, (ran.code, ran.err)
    assert "Traceback" in ran.err
    assert ran.err.splitlines()[-1].startswith("error: invalid configuration: MAX_EVENT_BYTES")


@pytest.mark.parametrize("option", ["--workers", "--stream-workers"])
def test_bench_refuses_fewer_than_one_worker_in_one_line(
    services: dict[str, str], option: str
) -> None:
    ran = run(services, "bench", option, "0")
    one_line(ran, ExitCode.BAD_ARGUMENTS, option, "at least 1")


def test_bench_refuses_tracing_without_the_latency_phase_in_one_line(
    services: dict[str, str],
) -> None:
    ran = run(services, "bench", "--tracing", "--latency-seconds", "0")
    one_line(ran, ExitCode.BAD_ARGUMENTS, "--tracing", "--latency-seconds must be over 0")
