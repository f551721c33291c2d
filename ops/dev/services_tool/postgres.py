"""PostgreSQL from the machine's packages (ops/dev/bootstrap installs them): a cluster of its
own in SERVICES_HOME/pg-data on 127.0.0.1:PG_PORT, trust auth, user `postgres`."""

from __future__ import annotations

import os
import re
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ops.dev.services_tool.config import HOST, Config
from ops.dev.services_tool.system import (
    ServicesError,
    cmdline,
    log,
    pid_alive,
    port_open,
    read_pid,
    since,
    stop_pid,
    tail,
)

_Out = int | IO[Any] | None
_INITDB = ("-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-locale")
_PSQL = ("-X", "-q", "-v", "ON_ERROR_STOP=1")

# Port and socket directory are passed at start, so PG_PORT and the checkout may move.
_CONF = """
# --- ops/dev/services: local development and tests ---
listen_addresses = '127.0.0.1'
max_connections = 200
shared_buffers = 256MB
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
log_min_messages = warning
"""


@dataclass(frozen=True)
class PgState:
    pid: int | None
    listening: bool
    version: str

    @property
    def running(self) -> bool:
        return self.pid is not None and self.listening


def _version_key(path: Path) -> list[int]:
    return [int(part) for part in re.findall(r"\d+", str(path))]


def pg_bin(config: Config) -> Path:
    if config.pg_bin is not None:
        if not (config.pg_bin / "pg_ctl").exists():
            raise ServicesError(f"PG_BIN={config.pg_bin} has no pg_ctl")
        return config.pg_bin
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=_version_key)
    if not found:
        raise ServicesError(
            "PostgreSQL server packages are missing: run ops/dev/bootstrap "
            "(or apt-get install postgresql)"
        )
    return found[-1].parent


def _root() -> bool:
    return os.geteuid() == 0


def _as_owner(
    config: Config, args: Sequence[str], *, stdout: _Out = None, stderr: _Out = None
) -> int:
    """Runs a server program as the cluster's owner: `postgres` when we are root (initdb and
    pg_ctl refuse to run as root), ourselves otherwise. Its exit code."""
    command = ["runuser", "-u", "postgres", "--", *args] if _root() else list(args)
    return subprocess.run(
        command, cwd=config.home, stdout=stdout, stderr=stderr, check=False
    ).returncode


def _pg_ctl(config: Config, action: str, *options: str) -> int:
    """`pg_ctl ACTION`, waiting up to READY_TIMEOUT (start) or STOP_TIMEOUT (stop)."""
    timeout = config.ready_timeout if action == "start" else config.stop_timeout
    command = [str(pg_bin(config) / "pg_ctl"), action, "-D", str(config.pg_data), "-w"]
    return _as_owner(
        config, [*command, "-t", str(int(timeout)), *options], stdout=subprocess.DEVNULL
    )


def _ensure_dirs(config: Config) -> None:
    for path in (config.pg_data, config.pg_run, config.logs):
        path.mkdir(parents=True, exist_ok=True)
    config.pg_log.touch()
    if not _root():
        return
    if (
        shutil.which("runuser") is None
        or subprocess.run(["id", "postgres"], capture_output=True, check=False).returncode
    ):
        raise ServicesError("postgres: no 'postgres' user to run the server as")
    for path in (config.pg_data, config.pg_run, config.pg_log):
        shutil.chown(path, "postgres", "postgres")
    config.pg_data.chmod(0o700)
    # As root, the cluster belongs to `postgres`, which must be able to reach the home.
    reach = subprocess.run(
        ["runuser", "-u", "postgres", "--", "test", "-x", str(config.home)], check=False
    )
    if reach.returncode != 0:
        for directory in (config.home, *config.home.parents):
            mode = directory.stat().st_mode
            if not mode & stat.S_IXOTH:
                log(f"postgres: granting others search (o+x) on {directory}")
                directory.chmod(mode | stat.S_IXOTH)


def pg_pid(config: Config) -> int | None:
    """The postmaster of our cluster, if it runs."""
    pid = read_pid(config.pg_data / "postmaster.pid")
    if pid is not None and pid_alive(pid) and any("postgres" in a for a in cmdline(pid)):
        return pid
    return None


def _init(config: Config, binaries: Path) -> None:
    if (config.pg_data / "PG_VERSION").exists():
        return
    log(f"postgres: initdb into {config.pg_data}")
    with config.pg_log.open("a") as out:
        code = _as_owner(
            config,
            [str(binaries / "initdb"), "-D", str(config.pg_data), *_INITDB],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    if code != 0:
        raise ServicesError(f"postgres: initdb failed:\n{tail(config.pg_log)}")
    with (config.pg_data / "postgresql.conf").open("a") as conf:
        conf.write(_CONF)


def _at(config: Config) -> list[str]:
    """Connection arguments of the client programs: the superuser, database `postgres`."""
    return ["-h", HOST, "-p", str(config.pg_port), "-U", "postgres", "-d", "postgres"]


def _psql(config: Config, binaries: Path, sql: str) -> str:
    psql = binaries / "psql"
    done = subprocess.run(
        [str(psql) if psql.exists() else "psql", *_PSQL, *_at(config), "-tAc", sql],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PGCONNECT_TIMEOUT": "5"},
    )
    if done.returncode != 0:
        raise ServicesError(f"postgres: {sql!r} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def start(config: Config) -> None:
    """Starts the cluster unless it runs; returns once it accepts connections and has PG_DB."""
    started = time.monotonic()
    binaries = pg_bin(config)
    _ensure_dirs(config)
    pid = pg_pid(config)
    if pid is not None:
        log(f"postgres: already running (pid {pid})")
    else:
        if port_open(config.pg_port):
            raise ServicesError(
                f"postgres: port {config.pg_port} is taken by a process ops/dev/services "
                "did not start (set PG_PORT)"
            )
        _init(config, binaries)
        log(f"postgres: starting PostgreSQL {_version(config)} on {HOST}:{config.pg_port}")
        options = f"-p {config.pg_port} -k '{config.pg_run}'"
        code = _pg_ctl(config, "start", "-l", str(config.pg_log), "-o", options)
        if code != 0:
            raise ServicesError(
                f"postgres: pg_ctl start failed ({config.pg_log}):\n{tail(config.pg_log)}"
            )
    deadline = time.monotonic() + config.ready_timeout
    while subprocess.run(
        [str(binaries / "pg_isready"), "-q", *_at(config)],
        check=False,
    ).returncode:
        if time.monotonic() > deadline:
            raise ServicesError(f"postgres: not accepting connections on {config.pg_port}")
        time.sleep(0.3)
    name = config.pg_db.replace("'", "''")
    if not _psql(config, binaries, f"SELECT 1 FROM pg_database WHERE datname = '{name}'"):
        log(f"postgres: creating database {config.pg_db}")
        quoted = config.pg_db.replace('"', '""')
        _psql(config, binaries, f'CREATE DATABASE "{quoted}"')
    log(f"postgres: ready on {HOST}:{config.pg_port} in {since(started)}")


def stop(config: Config, *, kill: bool = False) -> None:
    """A fast shutdown, or with `kill` an immediate one (a crash: recovery on next start)."""
    started = time.monotonic()
    pid = pg_pid(config)
    if pid is None:
        log("postgres: not running")
        return
    if kill:
        log(f"postgres: immediate shutdown of pid {pid} (crash simulation)")
    else:
        log(f"postgres: stopping pid {pid}")
    _pg_ctl(config, "stop", "-m", "immediate" if kill else "fast")
    if pid_alive(pid):
        log(f"postgres: still running after {config.stop_timeout:.0f}s, sending SIGKILL")
        stop_pid("postgres", pid, signal.SIGKILL, config.stop_timeout)
    log(f"postgres: stopped in {since(started)}")


def _version(config: Config) -> str:
    try:
        return (config.pg_data / "PG_VERSION").read_text().strip()
    except OSError:
        return "?"


def status(config: Config) -> PgState:
    pid = pg_pid(config)
    return PgState(pid, pid is not None and port_open(config.pg_port), _version(config))
