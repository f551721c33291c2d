"""Whether each of the contract's topics outlives the loss of one broker, for `store-publish
status`.

A write is acknowledged (acks=all, and every transaction marker) once `min.insync.replicas`
replicas hold it. Losing one broker then loses no acknowledged write only if that is at least
2, and refuses no write only if the replicas left are still that many: replicas >= min ISR + 1.
Three replicas with a min ISR of 2 (the default on three brokers) is the smallest layout that
does both. A topic created on an older migrate, or with TOPIC_MIN_INSYNC_REPLICAS set low,
may not: `status` says so, since nothing fails until the broker does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType


@dataclass(frozen=True)
class DurabilityWarning:
    topic: str
    replicas: int  # the fewest of any of its partitions
    min_insync: int
    brokers: int

    def describe(self) -> str:
        reasons: list[str] = []
        if self.min_insync < 2:
            reasons.append(
                f"min.insync.replicas {self.min_insync}: a write acknowledged by its leader "
                "alone is lost with that broker"
            )
        if self.replicas < self.min_insync + 1:
            reasons.append(
                f"{self.replicas} replica(s) with min.insync.replicas {self.min_insync}: "
                "one broker down refuses every write"
            )
        fix = (
            "unset TOPIC_MIN_INSYNC_REPLICAS (or set it to 2) and run store-publish migrate"
            if self.replicas >= 3
            else "reassign it to 3 replicas, then run store-publish migrate"
        )
        return (
            f"topic {self.topic} cannot survive the loss of one of {self.brokers} brokers: "
            f"{'; '.join(reasons)}; {fix}"
        )


def survives_one_broker_loss(replicas: int, min_insync: int) -> bool:
    """No acknowledged write lost and no write refused while any one broker is down."""
    return min_insync >= 2 and replicas >= min_insync + 1


def durability_warnings(
    layout: Mapping[str, tuple[int, int]], brokers: int
) -> list[DurabilityWarning]:
    """`layout`: topic -> (fewest replicas of a partition, min.insync.replicas). A cluster of
    one broker gets no warning: no setting makes it outlive its broker (a development setup),
    and saying so on every `status` would teach people to skip the line."""
    if brokers < 2:
        return []
    return [
        DurabilityWarning(topic, replicas, min_insync, brokers)
        for topic, (replicas, min_insync) in sorted(layout.items())
        if not survives_one_broker_loss(replicas, min_insync)
    ]


def _fewest_replicas(described: list[Any]) -> dict[str, int]:
    return {
        topic["topic"]: min(len(p["replicas"]) for p in topic["partitions"])
        for topic in described
        if topic["error_code"] == 0 and topic["partitions"]
    }


async def read_layout(
    admin: AIOKafkaAdminClient, topics: Sequence[str]
) -> tuple[dict[str, tuple[int, int]], int]:
    """Topic -> (fewest replicas, min.insync.replicas) for those of `topics` that exist, and
    the number of brokers in the cluster."""
    cluster = await admin.describe_cluster()
    # Every topic: naming one in a metadata request may create it with the broker's defaults.
    wanted = set(topics)
    found = _fewest_replicas(await admin.describe_topics())
    replicas = {name: count for name, count in found.items() if name in wanted}
    resources = [
        ConfigResource(ConfigResourceType.TOPIC, name, {"min.insync.replicas": None})
        for name in replicas
    ]
    min_insync: dict[str, int] = {}
    for response in await admin.describe_configs(resources) if resources else []:
        for code, _message, _type, name, entries in response.resources:
            if code != 0:
                continue
            for entry in entries:
                if entry[0] == "min.insync.replicas" and entry[1] is not None:
                    min_insync[name] = int(entry[1])
    layout = {name: (count, min_insync.get(name, 1)) for name, count in replicas.items()}
    return layout, len(cluster["brokers"])
