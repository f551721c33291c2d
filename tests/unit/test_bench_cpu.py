"""The bench finds the broker that ops/dev/services started, where the script keeps its pid."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def _spinning(name: str, seconds: float) -> Iterator[None]:
    """A thread the kernel names `name`, as a JVM names its own, that has burnt `seconds` of
    CPU when the block begins and lives until it ends (a thread's time leaves /proc with
    it)."""
    burnt, done = threading.Event(), threading.Event()

    def work() -> None:
        Path(f"/proc/self/task/{threading.get_native_id()}/comm").write_text(name)
        began = time.thread_time()
        while time.thread_time() - began < seconds:
            pass
        burnt.set()
        done.wait()

    thread = threading.Thread(target=work)
    thread.start()
    try:
        burnt.wait()
        yield
    finally:
        done.set()
        thread.join()


def test_a_jvms_jit_compiler_threads_are_counted_apart_from_its_work() -> None:
    pid = os.getpid()
    before = cpu.jit_seconds(pid)
    assert before is not None
    with _spinning("C2 CompilerThread0", 0.3), _spinning("data-plane-kafk", 0.2):
        # The compiler's thread, not the request handler's, whatever the process did besides.
        jit = cpu.jit_seconds(pid)
        total, less = cpu.cpu_seconds(pid), cpu.cpu_seconds_less_jit(pid)
    assert jit is not None
    assert 0.25 <= jit - before < 0.45
    assert total is not None
    assert less is not None
    assert less == pytest.approx(total - jit, abs=0.02)
    # A process that is gone has neither.
    assert cpu.jit_seconds(999999999) is None
    assert cpu.cpu_seconds_less_jit(999999999) is None
