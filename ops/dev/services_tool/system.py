"""What the services need from the machine: messages, programs, processes, ports, the lock.

Messages go to stderr, one line each, prefixed `services:`; stdout is for `env`,
`status --json` and `kafka-tool` only. Every expected failure is a `ServicesError` with one
sentence.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


class ServicesError(Exception):
    """An expected failure: a port taken, a process that died, a tool missing."""


@dataclass(frozen=True)
class ProcessState:
    """A server's process (None: not running) and whether its port accepts connections."""

    pid: int | None
    listening: bool

    @property
    def running(self) -> bool:
        return self.pid is not None and self.listening


def log(message: str) -> None:
    print(f"services: {message}", file=sys.stderr, flush=True)


def since(started: float) -> str:
    """Seconds since `started` (time.monotonic), as `12.3s`."""
    return f"{time.monotonic() - started:.1f}s"


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file, for an error message (empty if there is none)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def need(program: str, why: str, path: str | None = None) -> str:
    """The program's path on PATH (or `path`); ServicesError saying `why` it is needed."""
    found = shutil.which(program, path=path)
    if found is None:
        raise ServicesError(f"{program} not found: {why}")
    return found


def run_logged(
    command: Sequence[str], log_file: Path, what: str, *, cwd: Path | None = None
) -> None:
    """Runs `command`, its output appended to `log_file`; a ServicesError ending with the
    log's last lines says that `what` failed."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("a") as out:
        done = subprocess.run(
            command, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    if done.returncode != 0:
        raise ServicesError(f"{what} failed ({log_file}):\n{tail(log_file)}")


def output(command: Sequence[str], env: Mapping[str, str] | None = None) -> tuple[int, str]:
    """Runs `command`; its exit code and what it printed (stdout, then stderr)."""
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    return done.returncode, (done.stdout + done.stderr).strip()


def port_open(port: int) -> bool:
    """Something accepts connections on 127.0.0.1:`port`."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def refuse_taken(name: str, port: int, setting: str) -> None:
    """A ServicesError if something, which this tool did not start, listens on `port`."""
    if port_open(port):
        raise ServicesError(
            f"{name}: port {port} is taken by a process ops/dev/services did not start "
            f"(set {setting})"
        )


def pid_alive(pid: int) -> bool:
    """The process exists and is not a zombie (a child that died while we were its parent)."""
    with contextlib.suppress(ChildProcessError, OSError):
        # Reap it if it is our child: a broker started by this process and since dead.
        os.waitpid(pid, os.WNOHANG)
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cmdline(pid: int) -> list[str]:
    """The process's arguments (empty if it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        return raw.split("\0")[:-1]
    except OSError:
        return []


def live_pid(pid_file: Path, ours: Callable[[list[str]], bool]) -> int | None:
    """The process named on the first line of `pid_file`, if it runs with arguments `ours`."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if pid_alive(pid) and ours(cmdline(pid)) else None


def stop_all(
    processes: Mapping[str, int | None], sig: signal.Signals, doing: str, timeout: float
) -> None:
    """Sends `sig` to every process (name: pid, None if it is not running), then waits for
    each to go, with SIGKILL for one still there after `timeout` s. All are signalled before
    any is waited for: a Kafka node stopped after the others would have lost its quorum and
    wait out the timeout."""
    started = time.monotonic()
    running = {name: pid for name, pid in processes.items() if pid is not None}
    for name, pid in processes.items():
        if pid is None:
            log(f"{name}: not running")
            continue
        log(f"{name}: {doing} pid {pid}")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    for name, pid in running.items():
        deadline = time.monotonic() + timeout
        while pid_alive(pid):
            if time.monotonic() > deadline:
                log(f"{name}: still running after {timeout:.0f}s, sending SIGKILL")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                deadline = float("inf")
            time.sleep(0.1)
        log(f"{name}: stopped in {since(started)}")


@contextlib.contextmanager
def locked(home: Path, wait_s: float = 300) -> Iterator[None]:
    """Holds SERVICES_HOME's lock: concurrent runs on one home (parallel test sessions) must
    not race. Python's descriptors are not inherited, so no server started here holds it."""
    home.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_s
    with (home / "services.lock").open("a") as lock:
        for attempt in itertools.count():
            with contextlib.suppress(BlockingIOError):
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            if attempt == 0:
                log("waiting for another ops/dev/services run to finish")
            if time.monotonic() > deadline:
                raise ServicesError(f"could not take {lock.name}")
            time.sleep(0.2)
        yield
