"""Local Kafka (KRaft) and PostgreSQL on 127.0.0.1 for development, tests and CI.

Usage: ops/dev/services up|down|status [--json]|env [--json]
       ops/dev/services kafka-start [--node N] | kafka-stop [--node N] [--kill]
       ops/dev/services pg-start | pg-stop [--kill]
       ops/dev/services kafka-tool CLASS [ARGS...]

Everything lives in SERVICES_HOME (.cache at the checkout's root, git-ignored): the nodes'
data, configs, pid files, PostgreSQL's cluster and the logs (SERVICES_HOME/logs). The
broker's jars are resolved once by Maven from ops/dev/kafka/pom.xml into .cache/kafka-libs.
PostgreSQL comes from the machine's packages (ops/dev/bootstrap installs them).

  up           start both (idempotent); returns once a client can create a topic, commit a
               transactional write to it and read it back, and the database accepts
               connections; adopts what an earlier run left running
  down         stop what `up` started (SIGTERM, then SIGKILL after STOP_TIMEOUT)
  status       print what runs (stderr); exit 0 if everything is up, 3 otherwise;
               --json prints it on stdout
  env          print KAFKA_BOOTSTRAP_SERVERS=... and DATABASE_URL=... lines on stdout
               (`set -a; eval "$(ops/dev/services env)"; set +a` exports them); --json
               prints one JSON object instead
  kafka-start [--node N]          start every node (ready once a transaction commits) or
                                  node N alone (ready once it listens)
  kafka-stop [--node N] [--kill]  stop every node, or node N; --kill is SIGKILL (a crash)
  pg-start, pg-stop [--kill]      the database alone; --kill is an immediate shutdown
  kafka-tool CLASS [ARGS...]      a Kafka tool class from the broker's jars, e.g.
                                  kafka-tool org.apache.kafka.tools.TopicCommand
                                    --bootstrap-server 127.0.0.1:19092 --list

Environment: SERVICES_HOME (another directory runs a second, separate pair; CACHE is its old
name, honoured for a single broker), KAFKA_PORT (19092), KAFKA_CONTROLLER_PORT
(KAFKA_PORT+1), PG_PORT (15432), PG_DB (store_publish), KAFKA_HEAP_OPTS (-Xms512m -Xmx1g per
node), READY_TIMEOUT (s, 120), STOP_TIMEOUT (s, 30), PG_BIN (directory of pg_ctl; the newest
under /usr/lib/postgresql), JAVA_HOME.

KAFKA_BROKERS=N (default 1): a cluster of N KRaft nodes, each broker and controller, with
an N-voter quorum and internal topics replicated min(N, 3) with min ISR 2. Its defaults keep
it away from the single broker: SERVICES_HOME .cache/cluster, KAFKA_PORT 19292, PG_PORT
15632, KAFKA_HEAP_OPTS -Xms256m -Xmx512m. Node N listens on KAFKA_PORT+N-1, its controller on
KAFKA_CONTROLLER_PORT+N-1 (default KAFKA_PORT+10), and has its own data, config, pid file
and logs (SERVICES_HOME/logs/kafka-N/). KAFKA_BOOTSTRAP_SERVERS lists every node.

KAFKA_SECURE=1: each node also opens a SASL_SSL listener (TLS, SCRAM-SHA-512) on
KAFKA_SECURE_PORT+N-1 (default KAFKA_PORT+2, or +20 for a cluster) beside PLAINTEXT, with a
throwaway CA, a broker certificate for 127.0.0.1, and KRaft's StandardAuthorizer: what no ACL
allows is denied. Each role of ops/runtime/roles.py (consumer, stream, gateway, upstream,
analytics, oncall, migrate) gets a SCRAM user store-publish-<role> whose random password is
kept in SERVICES_HOME/kafka-secure/ (mode 600), and its ACLs (`store-publish acl apply`, run
from .venv once the broker is up). PLAINTEXT on loopback stays the super user's listener (the
nodes' links, the probe, the tools). Ready once a SASL_SSL client lists the topics. `env`
then also prints KAFKA_SECURE_BOOTSTRAP_SERVERS, KAFKA_SASL_MECHANISM, KAFKA_SSL_CAFILE and,
per role, KAFKA_SASL_USERNAME_<ROLE> and KAFKA_SASL_PASSWORD_<ROLE>, but no
KAFKA_SECURITY_PROTOCOL.

Messages go to stderr; only `env`, `status --json` and `kafka-tool` write to stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence

from ops.dev.services_tool.config import HOST, Config
from ops.dev.services_tool.kafka import ensure_kafka_libs, kafka_version, libs_stamp, tool_command
from ops.dev.services_tool.services import Services
from ops.dev.services_tool.system import ProcessState, ServicesError, locked, log

NOT_UP = 3


def _parser() -> argparse.ArgumentParser:
    usage = (__doc__ or "").split("Usage: ", 1)[1].split("\n\n", 1)[0]
    parser = argparse.ArgumentParser(prog="ops/dev/services", usage=usage, add_help=False)
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("up", "down", "pg-start"):
        commands.add_parser(name)
    for name in ("status", "env"):
        commands.add_parser(name).add_argument("--json", action="store_true")
    commands.add_parser("kafka-start").add_argument("--node", type=int)
    stop = commands.add_parser("kafka-stop")
    stop.add_argument("--node", type=int)
    stop.add_argument("--kill", action="store_true")
    commands.add_parser("pg-stop").add_argument("--kill", action="store_true")
    tool = commands.add_parser("kafka-tool")
    tool.add_argument("tool_args", nargs=argparse.REMAINDER)
    return parser


def run(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    """One command, as `ops/dev/services ARGV` with `environ`; its exit code.
    ServicesError propagates (main turns it into one line)."""
    if argv[:1] and argv[0] in ("help", "-h", "--help"):
        print(__doc__, file=sys.stderr)
        return 0
    args = vars(_parser().parse_args(argv))
    command = args.pop("command")
    config = Config.from_environ(environ)
    services = Services(config)
    if command == "env":
        found = services.env()
        lines = [json.dumps(found)] if args["json"] else [f"{k}={v}" for k, v in found.items()]
        print(*lines, sep="\n")
    elif command == "status":
        return _status(services, as_json=args["json"])
    elif command == "kafka-tool":
        return _kafka_tool(config, args["tool_args"])
    else:
        # up, down, kafka-start, kafka-stop, pg-start, pg-stop: the method of that name
        getattr(services, command.replace("-", "_"))(**args)
    return 0


def _status(services: Services, *, as_json: bool) -> int:
    found = services.status()
    for state in found.nodes:
        node = state.node
        version = f" (controller {node.controller_port}), Kafka {kafka_version(services.config)}"
        log(_describe(node.label, state, node.port, version))
    pg_version = f", PostgreSQL {found.postgres.version}"
    log(_describe("postgres", found.postgres, services.config.pg_port, pg_version))
    if as_json:
        print(json.dumps({"up": found.up, **dataclasses.asdict(found)}, default=str))
    return 0 if found.up else NOT_UP


def _describe(name: str, state: ProcessState, port: int, running: str) -> str:
    """One line of `status`; `running` ends the line of a server that runs."""
    if state.running:
        return f"{name}: running, pid {state.pid}, {HOST}:{port}{running}"
    if state.pid is not None:
        return f"{name}: starting, pid {state.pid}, port {port} not listening yet"
    return f"{name}: not running"


def _kafka_tool(config: Config, tool_args: list[str]) -> int:
    if not tool_args:
        raise ServicesError("usage: ops/dev/services kafka-tool CLASS [ARGS...]")
    if not libs_stamp(config).exists():
        with locked(config.home):
            ensure_kafka_libs(config)
    return subprocess.run(tool_command(config, *tool_args), check=False).returncode


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run(sys.argv[1:] if argv is None else argv, os.environ)
    except ServicesError as error:
        log(f"error: {error}")
        return 1
    except KeyboardInterrupt:
        return 130
