"""PostgreSQL from the machine's packages (ops/dev/bootstrap installs them): a cluster of its
own in SERVICES_HOME/pg-data on 127.0.0.1:PG_PORT, trust auth, user `postgres`."""

from __future__ import annotations

import os
import re
import shutil
import signal
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from ops.dev.services_tool.config import HOST, Config
from ops.dev.services_tool.system import (
    ProcessState,
    ServicesError,
    live_pid,
    log,
    output,
    port_open,
    refuse_taken,
    run_logged,
    since,
    stop_all,
)

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
class PgState(ProcessState):
    version: str


def pg_bin(config: Config) -> Path:
    """PG_BIN, else the newest server's under /usr/lib/postgresql."""
    candidates = [config.pg_bin] if config.pg_bin else Path("/usr/lib/postgresql").glob("*/bin")
    found = [path for path in candidates if (path / "pg_ctl").exists()]
    if not found:
        raise ServicesError(
            f"no pg_ctl in {config.pg_bin or '/usr/lib/postgresql'}: set PG_BIN, or install "
            "PostgreSQL's server packages with ops/dev/bootstrap"
        )
    return max(found, key=lambda path: [int(part) for part in re.findall(r"\d+", str(path))])


def _as_owner(config: Config, *command: str, what: str) -> None:
    """Runs a server program as the cluster's owner: `postgres` when we are root (initdb and
    pg_ctl refuse to run as root), ourselves otherwise. Its output goes to the server's log."""
    owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    run_logged([*owner, *command], config.pg_log, what, cwd=config.home)


def _ensure_dirs(config: Config) -> None:
    """The cluster's directories; as root, owned by `postgres`, which must reach the home."""
    for directory in (config.pg_data, config.pg_run, config.logs):
        directory.mkdir(parents=True, exist_ok=True)
    config.pg_log.touch()
    if os.geteuid() != 0:
        return
    try:
        for path in (config.pg_data, config.pg_run, config.pg_log):
            shutil.chown(path, "postgres", "postgres")
    except LookupError:
        raise ServicesError("postgres: no 'postgres' user to run the server as") from None
    config.pg_data.chmod(0o700)
    for directory in (config.home, *config.home.parents):
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            log(f"postgres: granting others search (o+x) on {directory}")
            directory.chmod(mode | stat.S_IXOTH)


def pg_pid(config: Config) -> int | None:
    """The postmaster of our cluster, if it runs."""
    return live_pid(config.pg_data / "postmaster.pid", lambda args: "postgres" in str(args))


def _psql(config: Config, binaries: Path, sql: str) -> tuple[int, str]:
    """`sql` run as the superuser in database `postgres`: exit code and output."""
    psql = binaries / "psql"
    connect = ["-h", HOST, "-p", str(config.pg_port), "-U", "postgres", "-d", "postgres"]
    command = [str(psql) if psql.exists() else "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1"]
    return output([*command, *connect, "-tAc", sql], {**os.environ, "PGCONNECT_TIMEOUT": "5"})


def start(config: Config) -> None:
    """Starts the cluster unless it runs; returns once it accepts connections and has PG_DB."""
    started = time.monotonic()
    binaries = pg_bin(config)
    _ensure_dirs(config)
    pid = pg_pid(config)
    if pid is not None:
        log(f"postgres: already running (pid {pid})")
    else:
        refuse_taken("postgres", config.pg_port, "PG_PORT")
        if not (config.pg_data / "PG_VERSION").exists():
            log(f"postgres: initdb into {config.pg_data}")
            initdb = [str(binaries / "initdb"), "-D", str(config.pg_data), "-U", "postgres"]
            settings = ["--auth=trust", "--encoding=UTF8", "--no-locale"]
            _as_owner(config, *initdb, *settings, what="postgres: initdb")
            with (config.pg_data / "postgresql.conf").open("a") as conf:
                conf.write(_CONF)
        log(f"postgres: starting PostgreSQL {_version(config)} on {HOST}:{config.pg_port}")
        pg_ctl = [str(binaries / "pg_ctl"), "start", "-D", str(config.pg_data), "-w"]
        options = ["-o", f"-p {config.pg_port} -k '{config.pg_run}'", "-l", str(config.pg_log)]
        timeout = ["-t", str(int(config.ready_timeout))]
        _as_owner(config, *pg_ctl, *timeout, *options, what="postgres: pg_ctl start")
    # Until it answers: one that was only starting (adopted) may still refuse connections.
    deadline = time.monotonic() + config.ready_timeout
    name = config.pg_db.replace("'", "''")
    query = f"SELECT 1 FROM pg_database WHERE datname = '{name}'"
    while (answer := _psql(config, binaries, query))[0] != 0:
        if time.monotonic() > deadline:
            raise ServicesError(
                f"postgres: not accepting connections on {config.pg_port}: {answer[1]}"
            )
        time.sleep(0.3)
    if not answer[1]:
        log(f"postgres: creating database {config.pg_db}")
        quoted = config.pg_db.replace('"', '""')
        code, said = _psql(config, binaries, f'CREATE DATABASE "{quoted}"')
        if code != 0:
            raise ServicesError(f"postgres: creating database {config.pg_db} failed: {said}")
    log(f"postgres: ready on {HOST}:{config.pg_port} in {since(started)}")


def stop(config: Config, *, kill: bool = False) -> None:
    """A fast shutdown (SIGINT), or with `kill` an immediate one (SIGQUIT: a crash, recovery
    on the next start); SIGKILL after STOP_TIMEOUT."""
    sig = signal.SIGQUIT if kill else signal.SIGINT
    doing = "immediate shutdown (crash simulation) of" if kill else "stopping"
    stop_all({"postgres": pg_pid(config)}, sig, doing, config.stop_timeout)


def _version(config: Config) -> str:
    version = config.pg_data / "PG_VERSION"
    return version.read_text().strip() if version.exists() else "?"


def status(config: Config) -> PgState:
    pid = pg_pid(config)
    return PgState(pid, pid is not None and port_open(config.pg_port), _version(config))
