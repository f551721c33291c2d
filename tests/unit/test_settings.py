"""Settings: the contract's variables and defaults, read from the environment once."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

from schemas.settings import Settings, default_min_insync_replicas

SECRET = "hmac-key-do-not-print"
PASSWORD = "sasl-pw-do-not-print"
DB_PASSWORD = "db-pw-do-not-print"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No variable from the machine running the tests (CI exports some) leaks into these."""
    fields = {name.upper() for name in Settings.model_fields}
    for name in list(os.environ):
        if name.upper() in fields:
            monkeypatch.delenv(name)


def load(**overrides: object) -> Settings:
    return Settings(_env_file=None, **overrides)  # type: ignore[arg-type]


def test_contract_defaults() -> None:
    settings = load()
    assert settings.topic_requests == "store.publish.requested"
    assert settings.topic_outcomes == "store.publish.outcomes"
    assert settings.topic_dlq == "store.publish.dlq"
    assert settings.topic_alerts == "store.publish.alerts"
    assert settings.consumer_group == "store-publish"
    assert settings.max_event_bytes == 65536
    assert settings.retry_max_attempts == 3
    assert settings.retry_initial_delay_ms == 1000
    assert settings.retry_backoff_factor == 2
    assert settings.retry_max_delay_ms == 5000
    assert settings.publish_required_steps == ("payments",)
    assert settings.event_signing_secret is None
    assert settings.kafka_security_protocol == "PLAINTEXT"


def test_contract_alert_thresholds_are_the_defaults() -> None:
    settings = load()
    assert settings.alert_error_rate_threshold == 0.05
    assert settings.alert_error_rate_for_seconds == 300
    assert settings.alert_slow_p95_ms == 10_000
    assert settings.alert_retry_rate_threshold == 0.20
    assert settings.alert_retry_rate_for_seconds == 600
    assert settings.alert_gating_rate_threshold == 0.50
    assert settings.alert_gating_rate_for_seconds == 600
    assert settings.alert_rollback_error_rate_threshold == 0.10
    assert settings.alert_rollback_for_seconds == 300


def test_contract_variable_names_are_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    values = {
        "DATABASE_URL": "postgresql://u@db:5432/x",
        "KAFKA_BOOTSTRAP_SERVERS": "kafka:9092",
        "EVENT_SIGNING_SECRET": SECRET,
        "PUBLISH_REQUIRED_STEPS": "payments,theme",
        "MAX_EVENT_BYTES": "1024",
        "RETRY_MAX_ATTEMPTS": "5",
        "RETRY_INITIAL_DELAY_MS": "100",
        "RETRY_BACKOFF_FACTOR": "3",
        "RETRY_MAX_DELAY_MS": "900",
        "TOPIC_REQUESTS": "t.req",
        "TOPIC_OUTCOMES": "t.out",
        "TOPIC_DLQ": "t.dlq",
        "TOPIC_ALERTS": "t.alerts",
        "CONSUMER_GROUP": "g",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    settings = load()
    assert settings.dsn() == "postgresql://u@db:5432/x"
    assert settings.kafka_bootstrap_servers == "kafka:9092"
    assert settings.event_signing_secret is not None
    assert settings.event_signing_secret.get_secret_value() == SECRET
    assert settings.publish_required_steps == ("payments", "theme")
    assert settings.max_event_bytes == 1024
    assert (
        settings.retry_max_attempts,
        settings.retry_initial_delay_ms,
        settings.retry_backoff_factor,
        settings.retry_max_delay_ms,
    ) == (5, 100, 3.0, 900)
    assert (
        settings.topic_requests,
        settings.topic_outcomes,
        settings.topic_dlq,
        settings.topic_alerts,
        settings.consumer_group,
    ) == ("t.req", "t.out", "t.dlq", "t.alerts", "g")


@pytest.mark.parametrize(
    ("raw", "steps"),
    [
        ("payments", ("payments",)),
        ("payments,theme,product", ("payments", "theme", "product")),
        (" payments , theme ,, product ,", ("payments", "theme", "product")),
        ("theme,payments", ("theme", "payments")),
    ],
)
def test_publish_required_steps_is_comma_separated_in_configured_order(
    monkeypatch: pytest.MonkeyPatch, raw: str, steps: tuple[str, ...]
) -> None:
    monkeypatch.setenv("PUBLISH_REQUIRED_STEPS", raw)
    assert load().publish_required_steps == steps


def test_env_file_is_read_when_present(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("PUBLISH_REQUIRED_STEPS=theme,payments\nMAX_EVENT_BYTES=2048\n")
    settings = Settings(_env_file=env_file)
    assert settings.publish_required_steps == ("theme", "payments")
    assert settings.max_event_bytes == 2048


def with_secrets() -> Settings:
    return load(
        database_url=f"postgresql://app:{DB_PASSWORD}@db/x",
        event_signing_secret=SECRET,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="app",
        kafka_sasl_password=PASSWORD,
    )


def test_secrets_are_secret_strings() -> None:
    settings = with_secrets()
    assert isinstance(settings.event_signing_secret, SecretStr)
    assert isinstance(settings.kafka_sasl_password, SecretStr)
    assert isinstance(settings.database_url, SecretStr)


@pytest.mark.parametrize(
    "render", [repr, str, lambda s: s.model_dump_json()], ids=["repr", "str", "json"]
)
def test_secrets_never_appear_when_settings_are_printed(
    render: Callable[[Settings], str],
) -> None:
    text = render(with_secrets())
    for secret in (SECRET, PASSWORD, DB_PASSWORD):
        assert secret not in text


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
@pytest.mark.parametrize(
    "given",
    [
        {},
        {"kafka_sasl_mechanism": "PLAIN", "kafka_sasl_username": "app"},
        {"kafka_sasl_mechanism": "PLAIN", "kafka_sasl_password": PASSWORD},
        {"kafka_sasl_username": "app", "kafka_sasl_password": PASSWORD},
    ],
    ids=["nothing", "no password", "no username", "no mechanism"],
)
def test_sasl_protocol_without_credentials_is_refused(protocol: str, given: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match="required with a SASL security protocol"):
        load(kafka_security_protocol=protocol, **given)


@pytest.mark.parametrize(
    "environment",
    [
        {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_PASSWORD": PASSWORD},
        {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "EVENT_SIGNING_SECRET": SECRET},
        {"MAX_EVENT_BYTES": "0", "EVENT_SIGNING_SECRET": SECRET, "DATABASE_URL": DB_PASSWORD},
        {"DATABASE_URL": DB_PASSWORD, "CONSUMER_HTTP_PORT": "x"},
    ],
    ids=["sasl password", "signing secret", "field error", "bad port"],
)
def test_startup_validation_errors_never_print_secrets(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str]
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as caught:
        load()
    for secret in (SECRET, PASSWORD, DB_PASSWORD):
        assert secret not in str(caught.value)


def test_sasl_with_all_credentials_reaches_the_kafka_client_options() -> None:
    options = load(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="app",
        kafka_sasl_password=PASSWORD,
    ).kafka_client_options()
    assert options["security_protocol"] == "SASL_PLAINTEXT"
    assert options["sasl_mechanism"] == "PLAIN"
    assert options["sasl_plain_username"] == "app"
    assert options["sasl_plain_password"] == PASSWORD


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MAX_EVENT_BYTES", "0"),
        ("RETRY_MAX_ATTEMPTS", "0"),
        ("RETRY_BACKOFF_FACTOR", "0.5"),
        ("RETRY_INITIAL_DELAY_MS", "-1"),
        ("KAFKA_SECURITY_PROTOCOL", "TLS"),
        ("CONSUMER_HTTP_PORT", "70000"),
        ("IDEMPOTENCY_PARTITION_INTERVAL", "0.5"),
    ],
)
def test_out_of_range_values_are_refused_at_startup(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        load()


def test_settings_are_frozen() -> None:
    settings = load()
    with pytest.raises(ValidationError):
        settings.max_event_bytes = 1  # type: ignore[misc]


def test_as_environment_round_trips_through_a_child_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = with_secrets().model_copy(update={"publish_required_steps": ("theme", "payments")})
    for name, value in original.as_environment().items():
        monkeypatch.setenv(name, value)
    assert load() == original


# A guard set to nothing would turn itself off: gating with no required step, authentication
# with an empty signing secret. Each is refused, never read as "off".
@pytest.mark.parametrize(
    ("name", "raw", "refusal"),
    [
        *(("PUBLISH_REQUIRED_STEPS", raw, "at least one step") for raw in ("", ",", " , ")),
        *(("EVENT_SIGNING_SECRET", raw, "set but empty") for raw in ("", "   ")),
    ],
)
def test_a_guard_set_but_empty_is_refused_so_it_is_never_off(
    monkeypatch: pytest.MonkeyPatch, name: str, raw: str, refusal: str
) -> None:
    monkeypatch.setenv(name, raw)
    with pytest.raises(ValidationError, match=refusal):
        load()


@pytest.mark.parametrize(("replicas", "min_isr"), [(1, 1), (2, 1), (3, 2), (5, 2)])
def test_min_insync_replicas_follows_the_replication_factor_when_unset(
    monkeypatch: pytest.MonkeyPatch, replicas: int, min_isr: int
) -> None:
    monkeypatch.setenv("TOPIC_REPLICATION_FACTOR", str(replicas))
    assert load().min_insync_replicas == min_isr


@given(st.integers(min_value=1, max_value=1000))
def test_the_default_min_insync_replicas_can_always_be_met(replicas: int) -> None:
    min_isr = default_min_insync_replicas(replicas)
    assert 1 <= min_isr <= replicas
    # Three replicas or more: an acknowledged write outlives any one broker, and the other
    # brokers still take writes while it is down.
    if replicas >= 3:
        assert min_isr >= 2
        assert replicas - 1 >= min_isr


def test_an_explicit_min_insync_replicas_wins_over_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOPIC_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("TOPIC_MIN_INSYNC_REPLICAS", "3")
    assert load().min_insync_replicas == 3
    monkeypatch.setenv("TOPIC_MIN_INSYNC_REPLICAS", "4")
    with pytest.raises(ValidationError, match="exceeds"):
        load()


def test_the_stream_fetch_wait_must_be_below_the_evaluation_interval() -> None:
    """A fetch held as long as an evaluation would leave the outcomes it holds out of the
    window evaluated meanwhile."""
    assert load(alert_evaluate_interval_seconds=1.0, stream_fetch_max_wait_ms=999)
    with pytest.raises(ValidationError, match="STREAM_FETCH_MAX_WAIT_MS"):
        load(alert_evaluate_interval_seconds=1.0, stream_fetch_max_wait_ms=1000)
    with pytest.raises(ValidationError, match="below"):
        load(alert_evaluate_interval_seconds=0.2)
