"""The Kafka nodes: format, launch, wait until ready, stop, report. One path for one node
or N; `only` picks a single node of the cluster (the fault tests kill and restart them)."""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from ops.dev.services_tool import secure
from ops.dev.services_tool.config import Config, Node
from ops.dev.services_tool.java import (
    ensure_kafka_libs,
    ensure_probe,
    java_bin,
    kafka_version,
    run_tool,
    tool_command,
)
from ops.dev.services_tool.kafka_config import jvm_options, listeners, render
from ops.dev.services_tool.system import (
    ServicesError,
    all_pids,
    cmdline,
    log,
    pid_alive,
    port_open,
    read_pid,
    since,
    tail,
    wait_gone,
)

PROBE_TOPIC = "ops-services-probe"


@dataclass(frozen=True)
class NodeState:
    node: Node
    pid: int | None
    listening: bool

    @property
    def running(self) -> bool:
        return self.pid is not None and self.listening


def _is_node(pid: int, node: Node) -> bool:
    """Our broker is the kafka.Kafka process started with the node's rendered config."""
    args = cmdline(pid)
    return any(
        arg == "kafka.Kafka" and args[i + 1 : i + 2] == [str(node.conf)]
        for i, arg in enumerate(args)
    )


def node_pid(node: Node) -> int | None:
    """The node's running process, if any; one whose pid file was lost is adopted."""
    pid = read_pid(node.pid_file)
    if pid is not None and pid_alive(pid) and _is_node(pid, node):
        return pid
    for other in all_pids():
        if _is_node(other, node) and pid_alive(other):
            node.pid_file.write_text(f"{other}\n")
            return other
    node.pid_file.unlink(missing_ok=True)
    return None


def _new_cluster_id() -> str:
    """A Kafka Uuid: 16 random bytes, base64url without padding, not starting with '-'."""
    while True:
        made = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
        if not made.startswith("-"):
            return made


def cluster_id(config: Config) -> str:
    """One id for every node, made once per SERVICES_HOME (or taken from formatted storage)."""
    if config.cluster_id_file.exists() and config.cluster_id_file.read_text().strip():
        return config.cluster_id_file.read_text().strip()
    found = _new_cluster_id()
    for node in config.nodes:
        for line in _read(node.data / "meta.properties").splitlines():
            if line.startswith("cluster.id="):
                found = line.removeprefix("cluster.id=")
    config.home.mkdir(parents=True, exist_ok=True)
    config.cluster_id_file.write_text(found + "\n")
    return found


def _read(path: os.PathLike[str]) -> str:
    try:
        with open(path) as file:
            return file.read()
    except OSError:
        return ""


def _format(config: Config, node: Node) -> None:
    if (node.data / "meta.properties").exists():
        return
    ident = cluster_id(config)
    log(f"{node.label}: formatting storage in {node.data} (cluster id {ident})")
    node.data.mkdir(parents=True, exist_ok=True)
    extra = secure.format_arguments(config) if config.secure else []
    run_tool(
        config,
        *("kafka.tools.StorageTool", "format", "--ignore-formatted", "--cluster-id", ident),
        *("--config", str(node.conf), *extra),
        log_file=node.logs / "kafka-format.log",
        what=f"formatting the storage of {node.label}",
    )
    if config.secure:
        secure.record_users(config, ident)


def _launch(config: Config, node: Node) -> int:
    """Starts the node unless it runs; does not wait. Its pid."""
    pid = node_pid(node)
    if pid is not None:
        log(f"{node.label}: already running (pid {pid})")
        if config.secure and "SASL_SSL://" not in _read(node.conf):
            raise ServicesError(
                f"{node.label}: running without KAFKA_SECURE=1: run down, then up again"
            )
        return pid
    for name, port in listeners(config, node).items():
        if port_open(port):
            raise ServicesError(
                f"{node.label}: port {port} ({name}) is taken by a process ops/dev/services "
                "did not start (set KAFKA_PORT)"
            )
    node.logs.mkdir(parents=True, exist_ok=True)
    tmp = node.conf.with_name(node.conf.name + ".tmp")
    tmp.write_text(render(config, node))
    tmp.rename(node.conf)
    _format(config, node)
    log(
        f"{node.label}: starting {kafka_version(config)} on {node.address} "
        f"(controller {node.controller_port}"
        + (f", SASL_SSL {node.secure_port})" if config.secure else ")")
    )
    with (node.logs / "kafka.out").open("a") as out:
        out.write(f"=== {datetime.now(UTC).isoformat()} starting kafka.Kafka {node.conf}\n")
        out.flush()
        # Its own session, so the broker outlives the command (or test) that started it.
        started = subprocess.Popen(
            [
                java_bin(config),
                *jvm_options(config, node),
                "-cp",
                f"{config.kafka_libs}/*",
                "kafka.Kafka",
                str(node.conf),
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    node.pid_file.write_text(f"{started.pid}\n")
    return started.pid


def _wait_listening(node: Node, pid: int, deadline: float, timeout: float) -> None:
    while not port_open(node.port):
        if not pid_alive(pid):
            node.pid_file.unlink(missing_ok=True)
            logs = "\n".join(
                tail(node.logs / name, 15) for name in ("kafka.out", "kafka-server.log")
            )
            raise ServicesError(f"{node.label}: exited during startup ({node.logs}):\n{logs}")
        if time.monotonic() > deadline:
            raise ServicesError(f"{node.label}: not listening after {timeout:.0f}s ({node.logs})")
        time.sleep(0.3)


def _probe(config: Config, pids: dict[int, int], deadline: float) -> None:
    """Until a client creates a topic, commits a transactional write to it and reads it back."""
    classes = ensure_probe(config)
    while True:
        left = int(deadline - time.monotonic())
        if left <= 0:
            raise ServicesError(
                f"kafka: not ready after {config.ready_timeout:.0f}s ({config.logs})"
            )
        done = subprocess.run(
            tool_command(
                config,
                *("Probe", config.bootstrap_servers, PROBE_TOPIC, str(min(left, 30))),
                extra_classpath=classes,
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        last = (done.stdout + done.stderr).strip().splitlines()[-1:] or [""]
        if done.returncode == 0:
            log(f"kafka: {last[0]}")
            return
        log(f"kafka: not ready yet ({last[0]})")
        dead = [node for node in config.nodes if node.id in pids and not pid_alive(pids[node.id])]
        if dead:
            raise ServicesError(f"{dead[0].label}: exited while starting ({dead[0].logs})")
        time.sleep(1)


def _secure_probe(config: Config, deadline: float) -> None:
    """Until a SASL_SSL client, trusting the CA and logged in as the first user, lists topics."""
    user = config.scram_users[0]
    while True:
        done = subprocess.run(
            tool_command(
                config,
                "org.apache.kafka.tools.TopicCommand",
                *("--bootstrap-server", config.secure_bootstrap_servers),
                *("--command-config", str(secure.client_config(config, user)), "--list"),
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode == 0:
            log(
                f"kafka: a SASL_SSL ({secure.MECHANISM}) client listed the topics on "
                f"{config.secure_bootstrap_servers}"
            )
            return
        said = " ".join((done.stdout + done.stderr).split())[:300]
        log(f"kafka: SASL_SSL not ready yet ({said})")
        if time.monotonic() > deadline:
            raise ServicesError(
                f"kafka: SASL_SSL listener not ready after {config.ready_timeout:.0f}s"
            )
        time.sleep(1)


def start(config: Config, only: int | None = None) -> None:
    """Starts every node and returns once the cluster takes a transaction (and, secure, once
    SASL_SSL answers); with `only`, starts that node and returns once it listens."""
    started = time.monotonic()
    deadline = started + config.ready_timeout
    ensure_kafka_libs(config)
    targets = (config.node(only),) if only is not None else config.nodes
    if config.secure:
        secure.ensure_material(config)
    pids = {node.id: _launch(config, node) for node in targets}
    for node in targets:
        _wait_listening(node, pids[node.id], deadline, config.ready_timeout)
    if only is not None:
        log(f"{targets[0].label}: listening on {targets[0].address} in {since(started)}")
        return
    _probe(config, pids, deadline)
    if config.secure:
        secure.ensure_users(config, cluster_id(config), config.bootstrap_servers)
        _secure_probe(config, deadline)
        secure.apply_acls(config)
    nodes = "" if config.brokers == 1 else f" ({config.brokers} nodes)"
    log(f"kafka: ready on {config.bootstrap_servers}{nodes} in {since(started)}")


def stop(config: Config, only: int | None = None, *, kill: bool = False) -> None:
    """SIGTERM (SIGKILL after STOP_TIMEOUT), or SIGKILL at once with `kill` (a crash). Every
    node is signalled before any is waited for: a node stopped after the others would have
    lost its quorum and wait out STOP_TIMEOUT."""
    started = time.monotonic()
    stopping: list[tuple[Node, int]] = []
    for node in (config.node(only),) if only is not None else config.nodes:
        pid = node_pid(node)
        if pid is None:
            log(f"{node.label}: not running")
            continue
        log(f"{node.label}: {'killing' if kill else 'stopping'} pid {pid}")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
        stopping.append((node, pid))
    for node, pid in stopping:
        wait_gone(node.label, pid, config.stop_timeout)
        node.pid_file.unlink(missing_ok=True)
        log(f"{node.label}: stopped in {since(started)}")


def status(config: Config) -> list[NodeState]:
    return [
        NodeState(node, pid, pid is not None and port_open(node.port))
        for node in config.nodes
        for pid in (node_pid(node),)
    ]
