"""The Kafka nodes, from the broker's jars (resolved by Maven from ops/dev/kafka/pom.xml):
format, launch, wait until ready, stop, report. One path for one node or N; `only` picks a
single node of the cluster (the fault tests kill and restart them). The tools and the
readiness probe run in small client JVMs, warnings only."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from ops.dev.services_tool import secure
from ops.dev.services_tool.config import DEV, Config, Node
from ops.dev.services_tool.kafka_config import jvm_options, listeners, render
from ops.dev.services_tool.system import (
    ProcessState,
    ServicesError,
    cmdline,
    live_pid,
    log,
    need,
    output,
    pid_alive,
    port_open,
    refuse_taken,
    run_logged,
    since,
    stop_all,
    tail,
)

# A command line, given the seconds left to the deadline.
Command = Callable[[int], list[str]]


@dataclass(frozen=True)
class NodeState(ProcessState):
    node: Node


def java_bin(config: Config) -> str:
    """JAVA_HOME's java, else the one on PATH."""
    home = [str(config.java_home / "bin")] if config.java_home else []
    path = os.pathsep.join([*home, os.environ.get("PATH", os.defpath)])
    return need("java", "Kafka 4 needs Java 17+", path)


def libs_stamp(config: Config) -> Path:
    """Written once the jars of the pom whose hash it holds are in place."""
    return config.kafka_libs / ".pom.sha256"


def ensure_kafka_libs(config: Config) -> None:
    """The jars of the pom, downloaded again only when the pom changes."""
    pom = DEV / "kafka" / "pom.xml"
    want = hashlib.sha256(pom.read_bytes()).hexdigest()
    if libs_stamp(config).exists() and libs_stamp(config).read_text().strip() == want:
        return
    mvn = need("mvn", "it resolves the Kafka jars (run ops/dev/bootstrap)")
    log("resolving Kafka jars from ops/dev/kafka/pom.xml with Maven")
    started = time.monotonic()
    tmp = config.kafka_libs.with_name(f"{config.kafka_libs.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    maven = [mvn, "-B", "-q", "-Dstyle.color=never", "-f", str(pom)]
    fetch = ["dependency:copy-dependencies", f"-DoutputDirectory={tmp}"]
    run_logged([*maven, *fetch], config.logs / "maven.log", "Maven resolving the Kafka jars")
    (tmp / ".pom.sha256").write_text(want + "\n")
    shutil.rmtree(config.kafka_libs, ignore_errors=True)
    tmp.rename(config.kafka_libs)
    jars = len(list(config.kafka_libs.glob("*.jar")))
    log(f"Kafka jars ready: {jars} jars in {since(started)}")


def kafka_version(config: Config) -> str:
    jars = config.kafka_libs.glob("kafka-clients-*.jar")
    return next((jar.stem.removeprefix("kafka-clients-") for jar in jars), "unknown")


def tool_command(config: Config, *args: str, classpath: str = "") -> list[str]:
    """`java ... CLASS ARGS` for a class of the broker's jars (and `classpath`), in a small
    client JVM."""
    options = ["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"]
    log4j = f"-Dlog4j2.configurationFile={DEV / 'kafka' / 'log4j2-tools.properties'}"
    jars = f"{config.kafka_libs}/*" + (f":{classpath}" if classpath else "")
    return [java_bin(config), *options, log4j, "-cp", jars, *args]


def _probe_command(config: Config, left: int) -> list[str]:
    """The readiness probe (Probe.java, compiled into SERVICES_HOME when it or the jars
    change): within `left` seconds (30 at most), creates a topic, commits a transactional
    write to it and reads it back."""
    source = DEV / "kafka" / "Probe.java"
    classes = config.home / "kafka-probe"
    compiled = classes / "Probe.class"
    newest = max(source.stat().st_mtime, libs_stamp(config).stat().st_mtime)
    if not compiled.exists() or compiled.stat().st_mtime < newest:
        javac = need("javac", "the readiness probe needs a JDK 17+")
        jars = f"{config.kafka_libs}/*"
        code, said = output([javac, "-nowarn", "-cp", jars, "-d", str(classes), str(source)])
        if code != 0:
            raise ServicesError(f"could not compile {source}:\n{said}")
    probe = ["Probe", config.bootstrap_servers, "ops-services-probe", str(min(left, 30))]
    return tool_command(config, *probe, classpath=str(classes))


def node_pid(node: Node) -> int | None:
    """The node's running process, if any: the kafka.Kafka process started with the node's
    rendered config. One whose pid file was lost is adopted."""

    def ours(args: list[str]) -> bool:
        return args[-2:] == ["kafka.Kafka", str(node.conf)]

    pid = live_pid(node.pid_file, ours)
    if pid is not None:
        return pid
    for other in (int(entry.name) for entry in Path("/proc").glob("[0-9]*")):
        if ours(cmdline(other)) and pid_alive(other):
            node.pid_file.write_text(f"{other}\n")
            return other
    node.pid_file.unlink(missing_ok=True)
    return None


def cluster_id(config: Config) -> str:
    """One id for every node, made once per SERVICES_HOME: a Kafka Uuid, 16 random bytes in
    base64url without padding, whose first bit is clear so that it cannot start with '-'."""
    path = config.home / "kafka-cluster-id"
    if not path.exists():
        made = base64.urlsafe_b64encode(bytes([os.urandom(1)[0] & 0x7F]) + os.urandom(15))
        path.write_text(made.decode().rstrip("=") + "\n")
    return path.read_text().strip()


def _format(config: Config, node: Node) -> None:
    """The node's storage, once; secure, with every SCRAM user in the new metadata."""
    if (node.data / "meta.properties").exists():
        return
    ident = cluster_id(config)
    log(f"{node.label}: formatting storage in {node.data} (cluster id {ident})")
    node.data.mkdir(parents=True, exist_ok=True)
    format_ = ["kafka.tools.StorageTool", "format", "--ignore-formatted", "--cluster-id", ident]
    scram = secure.format_arguments(config) if config.secure else []
    command = tool_command(config, *format_, "--config", str(node.conf), *scram)
    run_logged(command, node.logs / "kafka-format.log", f"{node.label}: formatting its storage")
    if config.secure:
        secure.record_users(config, ident)


def _launch(config: Config, node: Node) -> int:
    """Starts the node unless it runs; does not wait. Its pid."""
    pid = node_pid(node)
    if pid is not None:
        log(f"{node.label}: already running (pid {pid})")
        if config.secure and "SASL_SSL://" not in node.conf.read_text():
            raise ServicesError(
                f"{node.label}: running without KAFKA_SECURE=1: run down, then up again"
            )
        return pid
    for name, port in listeners(config, node).items():
        refuse_taken(f"{node.label} ({name})", port, "KAFKA_PORT")
    node.logs.mkdir(parents=True, exist_ok=True)
    node.conf.write_text(render(config, node))
    _format(config, node)
    secure_port = f", SASL_SSL {node.secure_port}" if config.secure else ""
    log(
        f"{node.label}: starting {kafka_version(config)} on {node.address} "
        f"(controller {node.controller_port}{secure_port})"
    )
    java = [java_bin(config), *jvm_options(config, node), "-cp", f"{config.kafka_libs}/*"]
    with (node.logs / "kafka.out").open("a") as out:
        out.write(f"=== {datetime.now(UTC).isoformat()} starting kafka.Kafka {node.conf}\n")
        out.flush()
        # Its own session, so the broker outlives the command (or test) that started it.
        started = subprocess.Popen(
            [*java, "kafka.Kafka", str(node.conf)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    node.pid_file.write_text(f"{started.pid}\n")
    return started.pid


def _wait(
    config: Config, pids: dict[Node, int], deadline: float, what: str, probe: Command | None = None
) -> str:
    """Until `probe(seconds left)` succeeds (the last line it printed), or without one until
    every node of `pids` listens. A ServicesError, with the logs' last lines, once one of them
    has exited, or `what` once the deadline has passed."""
    while (left := int(deadline - time.monotonic())) > 0:
        if probe is None and all(port_open(node.port) for node in pids):
            return ""
        if probe is not None:
            code, said = output(probe(left))
            last = said.splitlines()[-1] if said else ""
            if code == 0:
                return last
            log(f"kafka: {what} yet ({last[:300]})")
        for node, pid in pids.items():
            if not pid_alive(pid):
                node.pid_file.unlink(missing_ok=True)
                logs = [tail(node.logs / name, 15) for name in ("kafka.out", "kafka-server.log")]
                raise ServicesError(
                    f"{node.label}: exited while starting ({node.logs}):\n" + "\n".join(logs)
                )
        time.sleep(0.3)
    raise ServicesError(f"kafka: {what} after {config.ready_timeout:.0f}s ({config.logs})")


def _ensure_users(config: Config, cluster: str) -> None:
    """Storage formatted without these SCRAM users (or before their passwords were made)
    gets their credentials through the PLAINTEXT listener."""
    if secure.users_recorded(config, cluster):
        return
    for user in config.scram_users:
        log(f"kafka: setting the {secure.MECHANISM} credential of {user.name}")
        credential = f"{secure.MECHANISM}=[password={secure.password(config, user)}]"
        alter = ["--alter", "--entity-type", "users", "--entity-name", user.name]
        alter += ["--add-config", credential, "--bootstrap-server", config.bootstrap_servers]
        command = tool_command(config, "org.apache.kafka.tools.ConfigCommand", *alter)
        what = f"kafka: setting the credential of {user.name}"
        run_logged(command, config.logs / "kafka-secure.log", what)
    secure.record_users(config, cluster)


def start(config: Config, only: int | None = None) -> None:
    """Starts every node and returns once the cluster takes a transaction (and, secure, once
    a SASL_SSL client, logged in as the first user, lists the topics and the roles' ACLs are
    applied); with `only`, starts that node and returns once it listens."""
    started = time.monotonic()
    deadline = started + config.ready_timeout
    ensure_kafka_libs(config)
    targets = (config.node(only),) if only is not None else config.nodes
    if config.secure:
        secure.ensure_material(config)
    pids = {node: _launch(config, node) for node in targets}
    _wait(config, pids, deadline, "not listening")
    if only is not None:
        log(f"{targets[0].label}: listening on {targets[0].address} in {since(started)}")
        return
    ready = _wait(config, pids, deadline, "not ready", partial(_probe_command, config))
    log(f"kafka: {ready}")
    if config.secure:
        _ensure_users(config, cluster_id(config))
        login = secure.user_file(config, config.scram_users[0], "properties")
        topics = ["org.apache.kafka.tools.TopicCommand", "--list", "--command-config", str(login)]
        listing = tool_command(
            config, *topics, "--bootstrap-server", config.secure_bootstrap_servers
        )
        _wait(config, pids, deadline, "SASL_SSL not ready", lambda _: listing)
        log(
            f"kafka: a SASL_SSL ({secure.MECHANISM}) client listed the topics on "
            f"{config.secure_bootstrap_servers}"
        )
        secure.apply_acls(config)
    nodes = "" if config.brokers == 1 else f" ({config.brokers} nodes)"
    log(f"kafka: ready on {config.bootstrap_servers}{nodes} in {since(started)}")


def stop(config: Config, only: int | None = None, *, kill: bool = False) -> None:
    """SIGTERM (SIGKILL after STOP_TIMEOUT), or SIGKILL at once with `kill` (a crash)."""
    nodes = (config.node(only),) if only is not None else config.nodes
    sig = signal.SIGKILL if kill else signal.SIGTERM
    pids = {node.label: node_pid(node) for node in nodes}
    stop_all(pids, sig, "killing" if kill else "stopping", config.stop_timeout)
    for node in nodes:
        node.pid_file.unlink(missing_ok=True)


def status(config: Config) -> list[NodeState]:
    return [
        NodeState(pid, pid is not None and port_open(node.port), node)
        for node in config.nodes
        for pid in (node_pid(node),)
    ]
