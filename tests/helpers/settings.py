"""Settings a test owns: topics and a consumer group that no other test uses."""

from __future__ import annotations

import uuid

from schemas.settings import Settings


def isolated_settings(kafka: str, database_url: str, **overrides: object) -> Settings:
    """Settings for the broker at `kafka` and the database at `database_url`, with topics and
    a consumer group of their own (made up afresh on every call) and quick retries."""
    suffix = uuid.uuid4().hex[:10]
    values: dict[str, object] = {
        "kafka_bootstrap_servers": kafka,
        "database_url": database_url,
        "topic_requests": f"t.{suffix}.requested",
        "topic_outcomes": f"t.{suffix}.outcomes",
        "topic_dlq": f"t.{suffix}.dlq",
        "topic_alerts": f"t.{suffix}.alerts",
        "topic_partitions": 3,
        "consumer_group": f"t.{suffix}.group",
        "retry_initial_delay_ms": 10,
        "retry_max_delay_ms": 50,
        "pause_poll_interval_ms": 100,
        "consumer_http_port": 0,
        "stream_http_port": 0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]
