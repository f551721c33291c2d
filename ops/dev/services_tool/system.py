"""What the services need from the machine: messages, processes, ports, the lock.

Messages go to stderr, one line each, prefixed `services:`; stdout is for `env` and
`kafka-tool` only. Every expected failure is a `ServicesError` with one sentence.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path


class ServicesError(Exception):
    """An expected failure: a port taken, a process that died, a tool missing."""


def log(message: str) -> None:
    print(f"services: {message}", file=sys.stderr, flush=True)


def since(started: float) -> str:
    """Seconds since `started` (time.monotonic), as `12.3s`."""
    return f"{time.monotonic() - started:.1f}s"


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file, for an error message (empty if there is none)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def port_open(port: int) -> bool:
    """Something accepts connections on 127.0.0.1:`port`."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def pid_alive(pid: int | None) -> bool:
    """The process exists and is not a zombie (a child that died while we were its parent)."""
    if pid is None:
        return False
    with contextlib.suppress(ChildProcessError, OSError):
        # Reap it if it is our child: a broker started by this process and since dead.
        os.waitpid(pid, os.WNOHANG)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def cmdline(pid: int) -> list[str]:
    """The process's arguments (empty if it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return raw.decode(errors="replace").split("\0")


def all_pids() -> Iterator[int]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            yield int(entry.name)


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def stop_pid(name: str, pid: int, sig: signal.Signals, stop_timeout: float) -> None:
    """Sends `sig`, then waits for the process to go (see `wait_gone`)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    wait_gone(name, pid, stop_timeout)


def wait_gone(name: str, pid: int, stop_timeout: float) -> None:
    """Waits for the process to go; sends SIGKILL if it is still there after `stop_timeout` s."""
    deadline = time.monotonic() + stop_timeout
    killed = False
    while pid_alive(pid):
        if time.monotonic() > deadline and not killed:
            log(f"{name}: still running after {stop_timeout:.0f}s, sending SIGKILL")
            killed = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


@contextlib.contextmanager
def locked(path: Path, wait_s: float = 300) -> Iterator[None]:
    """Holds `path` locked: concurrent runs on one SERVICES_HOME (parallel test sessions)
    must not race. The descriptor is not inheritable, so no server started here holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log("waiting for another ops/dev/services run to finish")
            deadline = time.monotonic() + wait_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise ServicesError(f"could not take {path}") from None
                    time.sleep(0.2)
        yield
    finally:
        os.close(fd)
