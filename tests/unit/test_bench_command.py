"""`store-publish bench`: its options are BenchOptions' fields, defaults and all."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import ops.bench.run
import ops.cli.bench
import ops.runtime.logs
from ops.bench.options import BenchOptions
from ops.cli.app import app
from schemas.settings import Settings


class _Report:
    def summary(self) -> list[str]:
        return []


def _bench(monkeypatch: pytest.MonkeyPatch, *args: str) -> BenchOptions:
    given: list[BenchOptions] = []

    async def reach(settings: Settings) -> None:
        return None

    async def run(settings: Settings, options: BenchOptions, say: object) -> _Report:
        given.append(options)
        return _Report()

    monkeypatch.setattr(ops.cli.bench, "reach_services", reach)
    monkeypatch.setattr(ops.bench.run, "run_bench", run)
    # The command sets the process's logging up; the other tests' captured logs need it left.
    monkeypatch.setattr(ops.runtime.logs, "configure_logging", lambda level: None)
    result = CliRunner().invoke(app, ["bench", *args])
    assert result.exit_code == 0, result.output
    return given[0]


def test_bench_without_options_runs_with_bench_options_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert _bench(monkeypatch) == BenchOptions()


def test_bench_options_reach_their_fields_flags_and_renamed_ones_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    args = ("--requests", "5", "--latency-seconds", "2", "--profile", "/tmp/profiles")
    options = _bench(monkeypatch, *args, "--baseline", "--keep", "--tracing")
    assert (options.requests, options.latency_seconds) == (5, 2.0)
    assert options.profile_dir == Path("/tmp/profiles")
    assert (options.baseline, options.keep, options.tracing) == (True, True, True)
