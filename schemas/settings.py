"""The one settings object: every variable the contract names, read once at the entry point."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Where `ops/dev/services up` puts the local broker and database; docker-compose and real
# deployments set both variables explicitly.
LOCAL_KAFKA = "127.0.0.1:19092"
LOCAL_DATABASE_URL = "postgresql://postgres@127.0.0.1:15432/store_publish"

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


def default_min_insync_replicas(replication_factor: int) -> int:
    """`min.insync.replicas` when TOPIC_MIN_INSYNC_REPLICAS is unset: one less than the
    replicas, at most 2 and at least 1. Three brokers get 2: an acknowledged write is on two
    of them, so losing one loses nothing and leaves two to accept writes. One or two
    replicas get 1, since 2 of 2 would refuse every write while one broker is down."""
    return min(2, max(1, replication_factor - 1))


class Settings(BaseSettings):
    """Configuration from the environment (and an optional `.env` file)."""

    # hide_input_in_errors: a model-level error (SASL without credentials) would otherwise
    # print the whole input, secrets included, in the startup traceback.
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        hide_input_in_errors=True,
    )

    database_url: SecretStr = SecretStr(LOCAL_DATABASE_URL)
    # One connection per partition a consumer may hold: fewer makes partitions wait.
    db_pool_max_size: int = Field(default=6, ge=1, le=100)
    # A row lock held longer than this fails the attempt (55P03) and counts as a retry.
    db_lock_timeout_ms: int = Field(default=2000, ge=1)
    db_statement_timeout_ms: int = Field(default=10000, ge=1)
    # A consumer frozen inside a transaction (stalled, stopped) must not hold store locks
    # until it wakes: PostgreSQL ends such a session well before the group hands its
    # partitions to another consumer (session timeout 10 s).
    db_idle_in_transaction_timeout_ms: int = Field(default=5000, ge=1)

    kafka_bootstrap_servers: str = LOCAL_KAFKA
    kafka_security_protocol: SecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: SaslMechanism | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = None
    kafka_ssl_certfile: str | None = None
    kafka_ssl_keyfile: str | None = None

    topic_requests: str = "store.publish.requested"
    topic_outcomes: str = "store.publish.outcomes"
    topic_dlq: str = "store.publish.dlq"
    topic_alerts: str = "store.publish.alerts"
    topic_partitions: int = Field(default=6, ge=1)
    topic_replication_factor: int = Field(default=1, ge=1)
    # Set on the contract's topics by `store-publish migrate` (and reconciled on topics that
    # exist), so they never inherit a broker's or a managed cluster's defaults. Milliseconds,
    # -1 keeps records indefinitely. A paused request waits in the requests topic: its
    # retention bounds how long a pause may last before requests are deleted unread.
    topic_requests_retention_ms: int = Field(default=7 * 24 * 3600 * 1000, ge=-1)
    topic_outcomes_retention_ms: int = Field(default=7 * 24 * 3600 * 1000, ge=-1)
    # Dead letters wait for an operator, who may be on holiday: kept until replayed or purged.
    topic_dlq_retention_ms: int = Field(default=-1, ge=-1)
    topic_alerts_retention_ms: int = Field(default=30 * 24 * 3600 * 1000, ge=-1)
    # With acks=all a write (and a transaction marker) waits for this many in-sync replicas;
    # 2 of 3 lets one broker be lost without losing an acknowledged write. Unset, it follows
    # the replication factor (`default_min_insync_replicas`): the durable choice on a cluster
    # need not be remembered, and a single broker still accepts writes.
    topic_min_insync_replicas: int | None = Field(default=None, ge=1)
    # Compaction would keep one record per key: a store's earlier requests, outcomes and dead
    # letters would vanish. Set explicitly so that a cluster whose default is compact cannot
    # apply it; delete is the only policy the contract's topics can live with.
    topic_cleanup_policy: Literal["delete"] = "delete"
    consumer_group: str = "store-publish"
    consumer_max_batch: int = Field(default=5000, ge=1)
    # A poll of at most this many records is decided in one database transaction for all its
    # partitions rather than one each: at low rates a poll's statements, not its records,
    # are what the database and the consumer spend (docs/bench.md). 0: always one each.
    consumer_poll_transaction_max_records: int = Field(default=1000, ge=0)
    # The commit cadence: a poll (and so a Kafka transaction, whose cost is per transaction,
    # not per record) is taken at most this often unless the last one was full, so at low
    # rates a transaction carries more records for the same cost; a request waits up to this
    # much longer; the reader's fetch is held as long, so a request waits half of it on
    # average. 100 ms, as Kafka Streams commits under exactly-once. 0: a poll as soon as
    # records arrive (docs/bench.md, "The commit cadence").
    consumer_commit_interval_ms: int = Field(default=100, ge=0, le=10_000)
    # A batch's Kafka transaction not committed within this is abandoned: the producer is
    # replaced (its initialisation aborts the transaction) and the batch read again.
    kafka_commit_timeout_ms: int = Field(default=30000, ge=100)

    event_signing_secret: SecretStr | None = None
    publish_required_steps: Annotated[tuple[str, ...], NoDecode] = ("payments",)
    max_event_bytes: int = Field(default=64 * 1024, ge=1)
    store_base_url: str = "https://shops.example.com"

    retry_max_attempts: int = Field(default=3, ge=1)
    retry_initial_delay_ms: int = Field(default=1000, ge=0)
    retry_backoff_factor: float = Field(default=2.0, ge=1.0)
    retry_max_delay_ms: int = Field(default=5000, ge=0)

    # How often the consumer re-reads the pause flag, and how long it waits between
    # probes while PostgreSQL is unreachable.
    pause_poll_interval_ms: int = Field(default=1000, ge=10)
    db_outage_max_backoff_ms: int = Field(default=5000, ge=10)

    dlq_max_replays: int = Field(default=3, ge=0)

    # The idempotency ledger (`publish_requests`) keeps a request this long: at least the
    # requests topic's retention (7 days), within which every redelivery happens, plus a
    # margin. A request replayed later is decided again, safely (no second publish, no second
    # analytics row). ISO 8601 (`P8D`) or seconds.
    idempotency_retention: timedelta = Field(default=timedelta(days=8), gt=timedelta(0))
    # The ledger's partitions each cover this much time; whole ones are dropped, so a request
    # is kept at most the retention plus this. Maintenance runs twice per interval (at most
    # hourly): a second at least, or it would run more often than it can do its DDL.
    idempotency_partition_interval: timedelta = Field(
        default=timedelta(days=1), ge=timedelta(seconds=1)
    )

    http_host: str = "127.0.0.1"
    consumer_http_port: int = Field(default=9400, ge=0, le=65535)
    stream_http_port: int = Field(default=9401, ge=0, le=65535)
    gateway_http_port: int = Field(default=9402, ge=0, le=65535)

    # The HTTP front door (`store-publish gateway`): bearer tokens are HS256 under this secret,
    # as the original endpoint's were; the gateway refuses to start without it.
    jwt_secret: SecretStr | None = None
    # How long a POST waits for its outcome before answering 202: the original's timeout.
    gateway_wait_ms: int = Field(default=30000, ge=0)
    # Requests per user per minute (a burst of that many, refilled evenly); past it, 429.
    gateway_rate_per_user_per_min: int = Field(default=60, ge=1)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # Rates and alerts: the contract's rules; durations are seconds so tests run them fast.
    alert_window_seconds: float = Field(default=300.0, gt=0)
    alert_min_events: int = Field(default=20, ge=1)
    alert_evaluate_interval_seconds: float = Field(default=5.0, gt=0)
    alert_error_rate_threshold: float = 0.05
    alert_error_rate_for_seconds: float = 300.0
    alert_slow_p95_ms: float = 10_000.0
    alert_slow_for_seconds: float = 300.0
    alert_retry_rate_threshold: float = 0.20
    alert_retry_rate_for_seconds: float = 600.0
    alert_gating_rate_threshold: float = 0.50
    alert_gating_rate_for_seconds: float = 600.0
    alert_rollback_error_rate_threshold: float = 0.10
    alert_rollback_for_seconds: float = 300.0
    # The rates stream's fetches: the broker answers once this many bytes are ready or
    # STREAM_FETCH_MAX_WAIT_MS have passed, so at low rates a worker wakes a few times a
    # second instead of once per transaction of outcomes (a wake costs faust and aiokafka
    # milliseconds of CPU whatever it carries). The wait must stay below the evaluation
    # interval, or a window would be evaluated before the outcomes it should hold were read.
    # 1 s and 1 MiB (about 1,700 outcomes): a worker folds about once a second up to some
    # 1,700 outcomes/s, back to back above that (docs/bench.md, "The stream wakes rarely").
    stream_fetch_min_bytes: int = Field(default=1024 * 1024, ge=1)
    stream_fetch_max_wait_ms: int = Field(default=1000, ge=0)

    @field_validator("idempotency_retention", "idempotency_partition_interval", mode="before")
    @classmethod
    def _seconds_or_iso_duration(cls, value: object) -> object:
        # The environment gives strings: "3600" is seconds, like the number 3600.
        if isinstance(value, str):
            try:
                return timedelta(seconds=float(value))
            except ValueError:
                return value
        return value

    @field_validator("publish_required_steps", mode="before")
    @classmethod
    def _split_steps(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(step.strip() for step in value.split(",") if step.strip())
        return value

    @field_validator("publish_required_steps")
    @classmethod
    def _gating_is_never_off(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # An empty list would publish every confirmed request: a typo must not open the gate.
        if not value:
            raise ValueError("PUBLISH_REQUIRED_STEPS must name at least one step")
        return value

    @field_validator("event_signing_secret", "jwt_secret")
    @classmethod
    def _secret_is_not_empty(
        cls, value: SecretStr | None, info: ValidationInfo
    ) -> SecretStr | None:
        # Set but empty would silently turn authentication off (an empty signing secret), or
        # make a token anyone signs with the empty key valid (JWT): refuse it; unset is
        # explicit.
        if value is not None and not value.get_secret_value().strip():
            name = (info.field_name or "secret").upper()
            raise ValueError(f"{name} is set but empty; unset it or give a secret")
        return value

    @property
    def min_insync_replicas(self) -> int:
        """The `min.insync.replicas` the contract's topics get: the setting, or the default
        for the replication factor."""
        if self.topic_min_insync_replicas is not None:
            return self.topic_min_insync_replicas
        return default_min_insync_replicas(self.topic_replication_factor)

    @model_validator(mode="after")
    def _insync_replicas_can_be_met(self) -> Settings:
        # More in-sync replicas required than replicas exist would refuse every write.
        if self.min_insync_replicas > self.topic_replication_factor:
            raise ValueError(
                f"TOPIC_MIN_INSYNC_REPLICAS ({self.topic_min_insync_replicas}) exceeds "
                f"TOPIC_REPLICATION_FACTOR ({self.topic_replication_factor}): no write could "
                "be acknowledged"
            )
        return self

    @model_validator(mode="after")
    def _stream_fetch_waits_less_than_an_evaluation(self) -> Settings:
        interval_ms = self.alert_evaluate_interval_seconds * 1000
        if self.stream_fetch_max_wait_ms >= interval_ms:
            raise ValueError(
                f"STREAM_FETCH_MAX_WAIT_MS ({self.stream_fetch_max_wait_ms}) must be below "
                f"ALERT_EVALUATE_INTERVAL_SECONDS ({self.alert_evaluate_interval_seconds:g} s)"
            )
        return self

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> Settings:
        if self.kafka_security_protocol.startswith("SASL") and not (
            self.kafka_sasl_mechanism and self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                "KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD are required "
                "with a SASL security protocol"
            )
        return self

    def kafka_client_options(self) -> dict[str, object]:
        """Connection options shared by every aiokafka client (and faust's broker URL)."""
        options: dict[str, object] = {
            "bootstrap_servers": self.kafka_bootstrap_servers,
            "security_protocol": self.kafka_security_protocol,
        }
        if self.kafka_security_protocol in ("SSL", "SASL_SSL"):
            from aiokafka.helpers import create_ssl_context

            options["ssl_context"] = create_ssl_context(
                cafile=self.kafka_ssl_cafile,
                certfile=self.kafka_ssl_certfile,
                keyfile=self.kafka_ssl_keyfile,
            )
        if self.kafka_sasl_mechanism is not None:
            options["sasl_mechanism"] = self.kafka_sasl_mechanism
            options["sasl_plain_username"] = self.kafka_sasl_username
            options["sasl_plain_password"] = (
                self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None
            )
        return options

    def as_environment(self) -> dict[str, str]:
        """These settings as environment variables, for a child process to read back."""
        env: dict[str, str] = {}
        for name, value in self.model_dump().items():
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            elif isinstance(value, tuple):
                value = ",".join(value)
            env[name.upper()] = str(value)
        return env

    def child_environment(self) -> dict[str, str]:
        """The environment for a child process that must run with exactly these settings:
        this process's variables, less any setting, plus these settings."""
        inherited = {
            name: value
            for name, value in os.environ.items()
            if name.lower() not in type(self).model_fields
        }
        return {**inherited, **self.as_environment()}

    def dsn(self) -> str:
        return self.database_url.get_secret_value()

    def signing_key(self) -> bytes | None:
        """`EVENT_SIGNING_SECRET` as the HMAC key, or None when requests are not signed."""
        secret = self.event_signing_secret
        return secret.get_secret_value().encode("utf-8") if secret is not None else None
