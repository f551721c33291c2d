"""The bench finds the broker that ops/dev/services started, where the script keeps its pid."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ops.bench import cpu


def test_the_services_cache_is_the_scripts_default_in_the_checkout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # ops/dev/services: CACHE, else SERVICES_HOME, else ROOT/.cache, ROOT the checkout.
    monkeypatch.delenv("CACHE", raising=False)
    monkeypatch.delenv("SERVICES_HOME", raising=False)
    checkout = Path(__file__).resolve().parents[2]
    assert (checkout / "ops" / "dev" / "services").is_file()
    assert cpu.services_cache() == checkout / ".cache"
    monkeypatch.setenv("SERVICES_HOME", "/srv/elsewhere")
    assert cpu.services_cache() == Path("/srv/elsewhere")
    monkeypatch.setenv("CACHE", "/srv/first")
    assert cpu.services_cache() == Path("/srv/first")


def test_the_broker_pid_is_read_where_the_script_writes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CACHE", raising=False)
    monkeypatch.setenv("SERVICES_HOME", str(tmp_path))
    assert cpu.broker_pid() is None
    (tmp_path / "kafka.pid").write_text(f"{os.getpid()}\n")
    assert cpu.broker_pid() == os.getpid()
    assert cpu.cpu_seconds(os.getpid()) is not None
    # A pid file left by a broker that has gone counts for nothing.
    (tmp_path / "kafka.pid").write_text("999999999\n")
    assert cpu.broker_pid() is None
