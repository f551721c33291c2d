"""`store-publish status`: is publishing paused, how far behind is the consumer, how is it going.

Four sources, read once each: the pause switch (`publish_control`), the consumer group's
committed offsets against the requests topic's end offsets, the outcomes of the last
minutes (`publish_requests`), and the tail of the alerts topic. And which privilege the
database does not give a process's role (`ops.runtime.pg_roles`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition
from pydantic import ValidationError

from ops.oncall.durability import DurabilityWarning, durability_warnings, read_layout
from ops.oncall.retention import RetentionWarning, waiting_warnings
from ops.oncall.topic_reader import partition_offsets, read_snapshot
from ops.probes import KAFKA_TIMEOUT_MS, in_database, with_kafka_deadline
from ops.runtime.pause_switch import ControlState, read_control
from ops.runtime.pg_roles import MissingPrivilege, missing_privileges
from schemas.events import Alert, AlertState, Status
from schemas.settings import Settings

_ALERT_LOOKBACK = 200


@dataclass(frozen=True)
class PartitionLag:
    partition: int
    committed: int | None  # None: the group never committed on this partition
    end: int
    lag: int


@dataclass(frozen=True)
class OutcomeCount:
    status: str
    reason: str | None
    count: int
    retried: int  # of which needed more than one attempt


@dataclass(frozen=True)
class RecentOutcomes:
    minutes: float
    counts: list[OutcomeCount]

    @property
    def total(self) -> int:
        return sum(item.count for item in self.counts)

    def share(self, *statuses: Status) -> float:
        wanted = {status.value for status in statuses}
        matched = sum(item.count for item in self.counts if item.status in wanted)
        return matched / self.total if self.total else 0.0

    @property
    def retry_share(self) -> float:
        return sum(item.retried for item in self.counts) / self.total if self.total else 0.0

    @property
    def per_minute(self) -> float:
        return self.total / self.minutes


@dataclass(frozen=True)
class ConsumerState:
    """What a consumer process last said about itself (consumer_states)."""

    owner: str
    state: str  # working, paused, database_unavailable, database_fault
    sqlstate: str | None
    error: str | None
    since: datetime
    seconds_since_update: float

    @property
    def held_back(self) -> bool:
        return self.state != "working"

    def describe(self) -> str:
        why = {
            "working": "working",
            "paused": "held back by the pause switch",
            "database_unavailable": "held back: PostgreSQL does not answer",
            "database_fault": f"held back by a database fault (SQLSTATE {self.sqlstate})",
        }.get(self.state, self.state)
        line = f"consumer {self.owner}: {why} since {self.since.isoformat(timespec='seconds')}"
        if self.state == "database_fault" and self.error:
            line += f": {self.error}"
        if self.seconds_since_update > 90:
            line += f" (last heard {self.seconds_since_update:.0f} s ago)"
        return line


async def consumer_states(conn: asyncpg.Connection, consumer_group: str) -> list[ConsumerState]:
    rows = await conn.fetch(
        """SELECT owner, state, sqlstate, error, since,
                  extract(epoch FROM now() - updated_at) AS age
             FROM consumer_states WHERE consumer_group = $1 ORDER BY owner""",
        consumer_group,
    )
    return [
        ConsumerState(
            row["owner"],
            row["state"],
            row["sqlstate"],
            row["error"],
            row["since"],
            float(row["age"]),
        )
        for row in rows
    ]


@dataclass(frozen=True)
class PipelineStatus:
    control: ControlState
    consumer_group: str
    lag: list[PartitionLag]
    outcomes: RecentOutcomes
    alerts: list[Alert]  # the most recent last
    firing: list[str]
    consumers: list[ConsumerState]
    # Partitions whose oldest waiting request nears the requests topic's retention.
    retention: list[RetentionWarning] = field(default_factory=list)
    # Contract topics that would lose acknowledged writes, or refuse writes, with one broker
    # down (never on a single-broker cluster: see ops/oncall/durability.py).
    durability: list[DurabilityWarning] = field(default_factory=list)
    # Grants a process's role lacks in the database: that process fails (and the consumer
    # holds back, SQLSTATE 42501) until a DBA or `store-publish migrate` gives them.
    privileges: list[MissingPrivilege] = field(default_factory=list)

    @property
    def total_lag(self) -> int:
        return sum(item.lag for item in self.lag)

    def to_json(self) -> dict[str, object]:
        return {
            "paused": self.control.paused,
            "reason": self.control.reason,
            "changed_by": self.control.changed_by,
            "changed_at": self.control.changed_at.isoformat(),
            "consumer_group": self.consumer_group,
            "total_lag": self.total_lag,
            "lag": [asdict(item) for item in self.lag],
            "outcomes": {
                "minutes": self.outcomes.minutes,
                "total": self.outcomes.total,
                "per_minute": round(self.outcomes.per_minute, 3),
                "failed_share": round(self.outcomes.share(Status.FAILED), 4),
                "gated_share": round(self.outcomes.share(Status.GATED), 4),
                "retry_share": round(self.outcomes.retry_share, 4),
                "counts": [asdict(item) for item in self.outcomes.counts],
            },
            "alerts": [alert.model_dump(mode="json") for alert in self.alerts],
            "firing": self.firing,
            "consumers": [
                {**asdict(item), "since": item.since.isoformat()} for item in self.consumers
            ],
            "retention_warnings": [
                {**asdict(item), "message": item.describe()} for item in self.retention
            ],
            "durability_warnings": [
                {**asdict(item), "message": item.describe()} for item in self.durability
            ],
            "missing_privileges": [
                {**asdict(item), "message": item.describe()} for item in self.privileges
            ],
        }


def consumer_lag(
    offsets: dict[int, tuple[int, int]], committed: dict[int, int]
) -> list[PartitionLag]:
    """Lag per partition; where nothing is committed the group starts at the beginning."""
    lags: list[PartitionLag] = []
    for partition, (begin, end) in sorted(offsets.items()):
        done = committed.get(partition)
        done = done if done is not None and done >= 0 else None
        lags.append(PartitionLag(partition, done, end, max(end - (done or begin), 0)))
    return lags


async def group_lag(settings: Settings) -> list[PartitionLag]:
    offsets = await partition_offsets(settings, settings.topic_requests, "TOPIC_REQUESTS")
    servers = settings.kafka_bootstrap_servers
    admin = AIOKafkaAdminClient(
        **settings.kafka_client_options(), request_timeout_ms=KAFKA_TIMEOUT_MS
    )
    try:
        await with_kafka_deadline(servers, admin.start())
        found = await with_kafka_deadline(
            servers,
            admin.list_consumer_group_offsets(
                settings.consumer_group,
                partitions=[TopicPartition(settings.topic_requests, p) for p in offsets],
            ),
        )
    finally:
        await admin.close()
    committed = {tp.partition: int(meta.offset) for tp, meta in found.items()}
    return consumer_lag(offsets, committed)


async def topic_durability(settings: Settings) -> list[DurabilityWarning]:
    servers = settings.kafka_bootstrap_servers
    admin = AIOKafkaAdminClient(
        **settings.kafka_client_options(), request_timeout_ms=KAFKA_TIMEOUT_MS
    )
    try:
        await with_kafka_deadline(servers, admin.start())
        topics = [
            settings.topic_requests,
            settings.topic_outcomes,
            settings.topic_dlq,
            settings.topic_alerts,
        ]
        layout, brokers = await with_kafka_deadline(servers, read_layout(admin, topics))
    finally:
        await admin.close()
    return durability_warnings(layout, brokers)


async def recent_outcomes(conn: asyncpg.Connection, minutes: float) -> RecentOutcomes:
    rows = await conn.fetch(
        """SELECT status, reason, count(*) AS n, count(*) FILTER (WHERE attempts > 1) AS retried
             FROM publish_requests
            WHERE processed_at > now() - make_interval(secs => $1)
            GROUP BY status, reason
            ORDER BY n DESC, status, reason""",
        minutes * 60.0,
    )
    return RecentOutcomes(
        minutes,
        [OutcomeCount(row["status"], row["reason"], row["n"], row["retried"]) for row in rows],
    )


def firing_alerts(alerts: list[Alert]) -> list[str]:
    """Alerts whose most recent state change (in `alerts`, oldest first) is `firing`."""
    latest: dict[str, AlertState] = {}
    for alert in alerts:
        latest[alert.alert] = alert.state
    return sorted(name for name, state in latest.items() if state is AlertState.FIRING)


async def recent_alerts(settings: Settings, per_partition: int) -> list[Alert]:
    """The last alerts of each partition of the alerts topic, oldest first."""
    records = await read_snapshot(
        settings, settings.topic_alerts, "TOPIC_ALERTS", tail=per_partition
    )
    alerts: list[Alert] = []
    for record in records:
        try:
            alerts.append(Alert.model_validate_json(record.value or b""))
        except ValidationError:
            continue  # not ours to judge here; the alerts topic has its own consumers
    alerts.sort(key=lambda alert: alert.evaluated_at)
    return alerts


async def pipeline_status(
    settings: Settings, *, minutes: float = 5.0, alerts: int = 5
) -> PipelineStatus:
    async def from_database(
        conn: asyncpg.Connection,
    ) -> tuple[ControlState, RecentOutcomes, list[ConsumerState], list[MissingPrivilege]]:
        return (
            await read_control(conn),
            await recent_outcomes(conn, minutes),
            await consumer_states(conn, settings.consumer_group),
            await missing_privileges(conn),
        )

    control, outcomes, consumers, privileges = await in_database(settings.dsn(), from_database)
    lag = await group_lag(settings)
    waiting = {item.partition: item.end - item.lag for item in lag if item.lag > 0}
    retention = await waiting_warnings(settings, waiting)
    # Read further back than shown, so an alert that fired a while ago still counts as firing.
    history = await recent_alerts(settings, per_partition=max(alerts, _ALERT_LOOKBACK))
    return PipelineStatus(
        control=control,
        consumer_group=settings.consumer_group,
        lag=lag,
        outcomes=outcomes,
        alerts=history[-alerts:] if alerts else [],
        firing=firing_alerts(history),
        consumers=consumers,
        retention=retention,
        durability=await topic_durability(settings),
        privileges=privileges,
    )
