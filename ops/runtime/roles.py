"""The principals of the pipeline and what each may do: the one place they are named.

Every process runs as one role. Kafka knows a role by its principal (`User:<username>`, a
SCRAM user per role in the local secure setup) and grants it the ACLs of `kafka_grants`;
PostgreSQL knows it by the role `pg_role` names, whose grants `ops/db` applies. Nothing here
talks to a broker or a server: `ops.access` applies these grants, docs/security.md shows them.

The names follow the settings (topics and the consumer group), so one cluster can hold more
than one pipeline side by side. Resources that every process of a role creates for itself
(transactional ids, faust's internal topics) are matched by prefix: one ACL covers every
replica a role may scale to.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

# Only for types: the services tool (standard library only) reads the role names from here.
if TYPE_CHECKING:
    from schemas.settings import Settings


class Role(StrEnum):
    CONSUMER = "consumer"
    STREAM = "stream"
    GATEWAY = "gateway"
    UPSTREAM = "upstream"
    ANALYTICS = "analytics"
    ONCALL = "oncall"
    MIGRATE = "migrate"


ROLE_DUTIES: dict[Role, str] = {
    Role.CONSUMER: "decides and publishes requests; writes outcomes and dead letters",
    Role.STREAM: "computes rates over outcomes; writes alerts; may pause on auto-rollback",
    Role.GATEWAY: "turns HTTP calls into requests; waits for their outcomes",
    Role.UPSTREAM: "a service that emits publish requests",
    Role.ANALYTICS: "reads outcomes and alerts",
    Role.ONCALL: "lists and replays dead letters; pauses and resumes; reads status",
    Role.MIGRATE: "creates and reconciles the topics and the tables",
}

ResourceType = Literal["topic", "group", "transactional_id", "cluster"]
PatternType = Literal["literal", "prefixed"]
# Kafka's operation names (AclOperation), as its tools and docs spell them.
Operation = Literal[
    "READ", "WRITE", "CREATE", "DESCRIBE", "DESCRIBE_CONFIGS", "ALTER_CONFIGS", "DELETE"
]

# Kafka's own name for the one cluster resource.
CLUSTER = "kafka-cluster"
# Consumer groups an analytics reader may use: its own, never the pipeline's.
ANALYTICS_GROUP_PREFIX = "analytics-"


@dataclass(frozen=True)
class KafkaGrant:
    """ALLOW `operations` on one resource (or every resource starting with `name`)."""

    resource: ResourceType
    name: str
    pattern: PatternType
    operations: tuple[Operation, ...]

    @property
    def shown_name(self) -> str:
        """The name, with `*` when every name starting with it is meant."""
        return f"{self.name}*" if self.pattern == "prefixed" else self.name

    def describe(self) -> str:
        """As an operator grants it: `WRITE on topic store.publish.outcomes`."""
        operations = "+".join(self.operations)
        return f"{operations} on {self.resource.replace('_', ' ')} {self.shown_name}"


def kafka_username(role: Role) -> str:
    """The SCRAM user of `role` in the local secure setup; a managed cluster maps its own
    principals to roles (`store-publish acl --principal ROLE=User:NAME`)."""
    return f"store-publish-{role.value}"


def transactional_id_prefix(settings: Settings) -> str:
    """Every consumer process's transactional id starts with this
    (`consumers.kafka_io.new_transactional_id`)."""
    return f"{settings.consumer_group}:"


def stream_app_id(settings: Settings) -> str:
    """The rates stream's faust app id: its consumer group, and the prefix of the topics it
    makes for itself (changelogs, the partials topic, faust's leader topic)."""
    return f"{settings.consumer_group}-rates"


def kafka_grants(role: Role, settings: Settings) -> tuple[KafkaGrant, ...]:
    """What `role` may do on the broker, and nothing more (READ and WRITE imply DESCRIBE)."""
    requests, outcomes = settings.topic_requests, settings.topic_outcomes
    dlq, alerts = settings.topic_dlq, settings.topic_alerts

    def topic(name: str, *operations: Operation) -> KafkaGrant:
        return KafkaGrant("topic", name, "literal", operations)

    if role is Role.CONSUMER:
        return (
            topic(requests, "READ"),
            topic(outcomes, "WRITE"),
            topic(dlq, "WRITE"),
            KafkaGrant("group", settings.consumer_group, "literal", ("READ",)),
            KafkaGrant(
                "transactional_id", transactional_id_prefix(settings), "prefixed", ("WRITE",)
            ),
        )
    if role is Role.STREAM:
        app_id = stream_app_id(settings)
        return (
            topic(outcomes, "READ"),
            topic(alerts, "WRITE"),
            KafkaGrant("group", app_id, "literal", ("READ",)),
            # faust creates, reads and writes its own topics, all named `<app id>-...`.
            KafkaGrant(
                "topic", f"{app_id}-", "prefixed", ("CREATE", "READ", "WRITE", "DESCRIBE_CONFIGS")
            ),
        )
    if role is Role.GATEWAY:
        return (topic(requests, "WRITE"), topic(outcomes, "READ"))
    if role is Role.UPSTREAM:
        return (topic(requests, "WRITE"),)
    if role is Role.ANALYTICS:
        return (
            topic(outcomes, "READ"),
            topic(alerts, "READ"),
            KafkaGrant("group", ANALYTICS_GROUP_PREFIX, "prefixed", ("READ",)),
        )
    if role is Role.ONCALL:
        return (
            topic(dlq, "READ", "DESCRIBE_CONFIGS"),
            topic(requests, "WRITE", "DESCRIBE_CONFIGS"),
            topic(outcomes, "DESCRIBE", "DESCRIBE_CONFIGS"),
            topic(alerts, "DESCRIBE", "DESCRIBE_CONFIGS"),
            # `status` reads the consumer group's committed offsets: describing is enough.
            KafkaGrant("group", settings.consumer_group, "literal", ("DESCRIBE",)),
        )
    # MIGRATE: the contract's four topics, created and reconciled, never read or written.
    return tuple(
        topic(name, "CREATE", "DESCRIBE", "DESCRIBE_CONFIGS", "ALTER_CONFIGS")
        for name in (requests, outcomes, dlq, alerts)
    )


def pg_role(role: Role) -> str:
    """The PostgreSQL role `role`'s processes log in as (or are members of)."""
    return f"store_publish_{role.value}"


# Owns the idempotency ledger's partitions: the consumer maintains them (creates, cuts and
# drops partitions) by taking this role for that transaction alone, so it runs no DDL on
# anything else.
LEDGER_OWNER = "store_publish_ledger"
