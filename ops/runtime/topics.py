"""Creating topics: the contract's four for `store-publish migrate`, and any others (the bench's,
the tests') through the same call.

The contract's topics carry their own configuration (retention, min.insync.replicas, cleanup
policy) from the settings, so they never inherit a broker's defaults: `reconcile_topics`
creates those that are missing with it, sets it again on those that exist, and says what it
changed. It never changes a partition count (adding partitions moves stores to other
partitions, so their requests could be decided out of order): a count that differs from
`TOPIC_PARTITIONS` is refused before anything is touched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError, for_code

from ops.runtime.errors import PartitionCountMismatch
from schemas.settings import Settings

# DescribeConfigs' config_source for a value set on the topic itself.
_TOPIC_SOURCE = 1


def contract_topics(settings: Settings) -> list[str]:
    return [
        settings.topic_requests,
        settings.topic_outcomes,
        settings.topic_dlq,
        settings.topic_alerts,
    ]


def topic_configs(settings: Settings) -> dict[str, dict[str, str]]:
    """The configuration each contract topic must carry, as Kafka names it."""

    def config(retention_ms: int) -> dict[str, str]:
        return {
            "retention.ms": str(retention_ms),
            "min.insync.replicas": str(settings.min_insync_replicas),
            "cleanup.policy": settings.topic_cleanup_policy,
        }

    return {
        settings.topic_requests: config(settings.topic_requests_retention_ms),
        settings.topic_outcomes: config(settings.topic_outcomes_retention_ms),
        settings.topic_dlq: config(settings.topic_dlq_retention_ms),
        settings.topic_alerts: config(settings.topic_alerts_retention_ms),
    }


@dataclass(frozen=True)
class ConfigChange:
    topic: str
    name: str
    before: str | None
    after: str

    def __str__(self) -> str:
        return f"{self.topic}: {self.name} {self.before} -> {self.after}"


@dataclass(frozen=True)
class TopicReport:
    """What `reconcile_topics` did: topics created, settings changed, and what it left alone."""

    created: list[str] = field(default_factory=list)
    changed: list[ConfigChange] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        made = f"topics: {len(self.created)} created {self.created}"
        return [made, *(f"topics: changed {change}" for change in self.changed), *self.notes]


async def create_topics(
    settings: Settings,
    names: Sequence[str],
    partitions: int | None = None,
    configs: Mapping[str, Mapping[str, str]] | None = None,
) -> list[str]:
    """Create those of `names` that do not exist yet (with `partitions`, default the
    configured count, and each name's `configs`); returns the names created."""
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        return await _create_missing(admin, settings, names, existing, partitions, configs or {})
    finally:
        await admin.close()


async def _create_missing(
    admin: AIOKafkaAdminClient,
    settings: Settings,
    names: Sequence[str],
    existing: set[str],
    partitions: int | None,
    configs: Mapping[str, Mapping[str, str]],
) -> list[str]:
    missing = [name for name in dict.fromkeys(names) if name not in existing]
    if missing:
        response = await admin.create_topics(
            [
                NewTopic(
                    name,
                    num_partitions=partitions or settings.topic_partitions,
                    replication_factor=settings.topic_replication_factor,
                    topic_configs=dict(configs.get(name, {})),
                )
                for name in missing
            ]
        )
        for _name, code, *_ in response.topic_errors:
            # Another process may have created it at the same moment: that is fine.
            if code not in (0, TopicAlreadyExistsError.errno):
                raise for_code(code)()
    return missing


def _layout(described: list[Any]) -> dict[str, tuple[int, int]]:
    """Topic -> (partitions, replicas of its first partition), for topics that answered."""
    layout: dict[str, tuple[int, int]] = {}
    for topic in described:
        if topic["error_code"] == 0 and topic["partitions"]:
            first = min(topic["partitions"], key=lambda p: p["partition"])
            layout[topic["topic"]] = (len(topic["partitions"]), len(first["replicas"]))
    return layout


async def _topic_overrides(
    admin: AIOKafkaAdminClient, names: Sequence[str]
) -> dict[str, tuple[dict[str, str], dict[str, str]]]:
    """Topic -> (every effective value, the values set on the topic itself)."""
    found: dict[str, tuple[dict[str, str], dict[str, str]]] = {}
    if not names:
        return found
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
    for response in await admin.describe_configs(resources):
        for code, message, _type, name, entries in response.resources:
            if code != 0:
                raise for_code(code)(message)
            effective = {entry[0]: entry[1] for entry in entries}
            # v1+ reports the source; v0 only whether the value is the default.
            own = {
                entry[0]: entry[1]
                for entry in entries
                if (entry[3] == _TOPIC_SOURCE if response.API_VERSION else not entry[3])
            }
            found[name] = (effective, own)
    return found


async def reconcile_topics(settings: Settings) -> TopicReport:
    """The contract's topics exist with their configuration; PartitionCountMismatch if one
    has a partition count other than `TOPIC_PARTITIONS`."""
    wanted = topic_configs(settings)
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())
    await admin.start()
    try:
        # Every topic: naming one in a metadata request may create it with the broker's defaults.
        layout = _layout(await admin.describe_topics())
        present = [name for name in wanted if name in layout]
        for name in present:
            count = layout[name][0]
            if count != settings.topic_partitions:
                raise PartitionCountMismatch(name, count, settings.topic_partitions)
        notes = [
            f"topics: {name} has {layout[name][1]} replica(s), TOPIC_REPLICATION_FACTOR is "
            f"{settings.topic_replication_factor}: not changed (a partition reassignment does it)"
            for name in present
            if layout[name][1] != settings.topic_replication_factor
        ]
        created = await _create_missing(admin, settings, list(wanted), set(layout), None, wanted)
        changes: list[ConfigChange] = []
        alter: list[ConfigResource] = []
        for name, (effective, own) in (await _topic_overrides(admin, present)).items():
            differs = [
                ConfigChange(name, key, effective.get(key), value)
                for key, value in wanted[name].items()
                if effective.get(key) != value
            ]
            if differs:
                changes += differs
                # AlterConfigs replaces the topic's own values as a whole: keep the others.
                alter.append(
                    ConfigResource(ConfigResourceType.TOPIC, name, {**own, **wanted[name]})
                )
        if alter:
            for response in await admin.alter_configs(alter):
                for code, message, _type, _name in response.resources:
                    if code != 0:
                        raise for_code(code)(message)
        return TopicReport(created, changes, notes)
    finally:
        await admin.close()


async def ensure_topics(settings: Settings) -> list[str]:
    """The contract's topics, created when absent and their configuration reconciled;
    returns the names created (`reconcile_topics` tells what else changed)."""
    return (await reconcile_topics(settings)).created
