"""A Kafka node's server.properties, as a function of the settings: one node or N, plain or
with the SASL_SSL listener. Written to SERVICES_HOME/kafka-server[-N].properties; edit this
module, not the rendered files."""

from __future__ import annotations

from ops.dev.services_tool import secure
from ops.dev.services_tool.config import DEV, HOST, Config, Node


def listeners(config: Config, node: Node) -> dict[str, int]:
    """Listener name -> port. The probe, the controllers and the tools use PLAINTEXT."""
    found = {"PLAINTEXT": node.port, "CONTROLLER": node.controller_port}
    if config.secure:
        found["SASL_SSL"] = node.secure_port
    return found


def node_properties(config: Config, node: Node) -> dict[str, str]:
    named = listeners(config, node)
    replicas = min(config.brokers, 3)
    # With replicas, two must have a write before it is acknowledged: one node may be lost
    # without losing an acknowledged record, offset or transaction marker.
    min_isr = 1 if replicas == 1 else 2
    properties = {
        "process.roles": "broker,controller",
        "node.id": str(node.id),
        # A static voter set: ports can change between runs without reformatting; with three,
        # any two controllers elect a leader and one alone cannot.
        "controller.quorum.voters": ",".join(
            f"{other.id}@{HOST}:{other.controller_port}" for other in config.nodes
        ),
        "listeners": ",".join(f"{name}://{HOST}:{port}" for name, port in named.items()),
        "advertised.listeners": ",".join(
            f"{name}://{HOST}:{port}" for name, port in named.items() if name != "CONTROLLER"
        ),
        "listener.security.protocol.map": ",".join(
            f"{name}:{'PLAINTEXT' if name == 'CONTROLLER' else name}" for name in named
        ),
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "log.dirs": str(node.data),
        "default.replication.factor": str(replicas),
        "min.insync.replicas": str(min_isr),
        "offsets.topic.replication.factor": str(replicas),
        "transaction.state.log.replication.factor": str(replicas),
        "transaction.state.log.min.isr": str(min_isr),
        "share.coordinator.state.topic.replication.factor": str(replicas),
        "share.coordinator.state.topic.min.isr": str(min_isr),
        # Fewer internal partitions than the defaults (50): created on first use, cheaper.
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.num.partitions": "10",
        # Never elect a replica that missed writes: a lost record is worse than a pause.
        "unclean.leader.election.enable": "false",
        # A node killed is noticed (and its leaderships moved) within 5 s, and a restarted
        # one is unfenced once its previous incarnation's session has expired (5 s, not 9).
        "broker.heartbeat.interval.ms": "1000",
        "broker.session.timeout.ms": "5000",
        # Leaders move back to their preferred replicas soon after a node returns.
        "leader.imbalance.check.interval.seconds": "10",
        "num.partitions": "6",
        "group.initial.rebalance.delay.ms": "0",
        # Every node shares 2 cores with PostgreSQL, the pipeline and the tests.
        "num.network.threads": str(max(1, 2 // config.brokers)),
        "num.io.threads": str(max(2, 4 // config.brokers)),
        "background.threads": str(max(2, 4 // config.brokers)),
        "num.recovery.threads.per.data.dir": "1",
        "log.segment.bytes": "104857600",
    }
    if config.secure:
        properties.update(secure.broker_properties(config))
    return properties


def render(config: Config, node: Node) -> str:
    header = (
        f"# Kafka node {node.id} of {config.brokers}, written by ops/dev/services from "
        "ops/dev/services_tool/kafka_config.py: edit that, not this file.\n"
    )
    body = "".join(f"{key}={value}\n" for key, value in node_properties(config, node).items())
    return header + body


def jvm_options(config: Config, node: Node) -> list[str]:
    """The broker JVM's options: heap (KAFKA_HEAP_OPTS), G1 with its threads shared out."""
    return [
        *config.heap_opts,
        *("-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35"),
        *(f"-XX:ParallelGCThreads={max(1, 2 // config.brokers)}", "-XX:ConcGCThreads=1"),
        *("-XX:+ExplicitGCInvokesConcurrent", "-Djava.awt.headless=true"),
        f"-Dkafka.logs.dir={node.logs}",
        f"-Dlog4j2.configurationFile={DEV / 'kafka' / 'log4j2.properties'}",
    ]
