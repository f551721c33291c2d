"""CPU seconds per process, from /proc (utime + stime; PostgreSQL adds its backends and the
time of those it has reaped), so each figure is the process's own, whatever else shares
the machine."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import asyncpg

_TICK = os.sysconf("SC_CLK_TCK")
# The checkout: ops/dev/services keeps its state in .cache there unless told otherwise.
_CHECKOUT = Path(__file__).resolve().parents[2]


def _stat(pid: int) -> list[str] | None:
    return _stat_of(Path(f"/proc/{pid}"))


def _stat_of(process_or_thread: Path) -> list[str] | None:
    try:
        text = (process_or_thread / "stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: split after its last ")".
    return text.rsplit(")", 1)[1].split()


def cpu_seconds(pid: int, *, with_children: bool = False) -> float | None:
    """utime + stime of `pid`; with its live children and its reaped ones when asked."""
    fields = _stat(pid)
    if fields is None:
        return None
    ticks = int(fields[11]) + int(fields[12])
    if with_children:
        ticks += int(fields[13]) + int(fields[14])
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                child = _stat(int(entry.name))
                if child is not None and child[1] == str(pid):
                    ticks += int(child[11]) + int(child[12])
    return ticks / _TICK


# HotSpot's JIT compiler threads ("C2 CompilerThread0", cut to 15 characters in /proc).
_JIT_THREADS = ("C1 CompilerThre", "C2 CompilerThre")


def jit_seconds(pid: int) -> float | None:
    """utime + stime of a JVM's live JIT compiler threads.

    A young JVM compiles the code its load makes hot, for minutes and whatever the load:
    on a broker in its second bench run, 34 of its 119 ms of CPU a second at 1,000
    requests/s and 93 of 197 at 100/s (docs/bench.md). That is a cost of the broker's age,
    not of the requests, so it is reported apart from them. HotSpot may end an idle
    compiler thread; its time then stays in the process's total and counts as the broker's
    own, the cautious way to be wrong."""
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return None
    ticks = 0
    for task in tasks:
        try:
            compiling = (task / "comm").read_text().startswith(_JIT_THREADS)
        except OSError:
            continue  # the thread ended between listing and reading
        fields = _stat_of(task) if compiling else None
        if fields is not None:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / _TICK


def cpu_seconds_less_jit(pid: int) -> float | None:
    """A JVM's CPU but for its JIT compiler threads' (`jit_seconds`)."""
    total, jit = cpu_seconds(pid), jit_seconds(pid)
    return total - jit if total is not None and jit is not None else total


def services_cache() -> Path:
    """Where `ops/dev/services` keeps its pid files: the same choice as the script's."""
    chosen = os.environ.get("CACHE") or os.environ.get("SERVICES_HOME")
    return Path(chosen) if chosen else _CHECKOUT / ".cache"


def broker_pid() -> int | None:
    """The broker that `ops/dev/services` started, when there is one on this machine."""
    try:
        pid = int((services_cache() / "kafka.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _stat(pid) is not None else None


async def postmaster_pid(dsn: str) -> int | None:
    """PostgreSQL's postmaster: the parent of this connection's backend, when it is local."""
    conn = await asyncpg.connect(dsn)
    try:
        # Read while the backend lives: it exits with the connection.
        fields = _stat(int(await conn.fetchval("SELECT pg_backend_pid()")))
    finally:
        await conn.close()
    return int(fields[1]) if fields is not None else None


CpuSources = Mapping[str, Callable[[], float | None]]


def cpu_snapshot(sources: CpuSources) -> dict[str, float | None]:
    return {name: read() for name, read in sources.items()}


def cpu_used(
    before: Mapping[str, float | None], after: Mapping[str, float | None]
) -> dict[str, float | None]:
    used: dict[str, float | None] = {}
    for name, start in before.items():
        end = after.get(name)
        used[name] = round(end - start, 2) if start is not None and end is not None else None
    return used
