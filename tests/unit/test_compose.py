"""docker-compose.yml and the Dockerfile agree with the settings and the repository.

No Docker engine runs here, so the file is parsed and checked: the services exist, every
variable given to our services is a Settings field and parses as one, the consumer and the
stream share their Kafka and database settings, and the mounted Prometheus files exist.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from schemas.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
OURS = ("migrate", "consumer", "stream")
SHARED_PREFIXES = ("DATABASE_", "KAFKA_", "TOPIC_", "CONSUMER_GROUP", "EVENT_SIGNING_SECRET")
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}
VARIABLE = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def service(name: str) -> dict[str, Any]:
    found = compose()["services"][name]
    assert isinstance(found, dict)
    return found


def environment(name: str) -> dict[str, str]:
    env = service(name).get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(key): str(value) for key, value in env.items()}


def interpolate(value: str, given: dict[str, str]) -> str:
    """Docker Compose's substitution, with `given` as the operator's environment."""

    def substitute(match: re.Match[str]) -> str:
        name, operator, argument = match.group(1), match.group(2) or "", match.group(3) or ""
        present = given.get(name)
        # With a colon, an empty value counts as unset.
        unset = present is None or (operator.startswith(":") and present == "")
        if operator.endswith("?"):
            assert not unset, f"compose requires {name}: {argument}"
        if operator.endswith("-") and unset:
            return argument
        return present or ""

    return VARIABLE.sub(substitute, value)


def test_compose_defines_the_pipeline_services() -> None:
    assert set(compose()["services"]) >= {
        "kafka",
        "postgres",
        "migrate",
        "consumer",
        "stream",
        "prometheus",
    }


def test_kafka_is_a_single_kraft_node_of_apache_kafka_4() -> None:
    kafka = service("kafka")
    assert re.fullmatch(r"apache/kafka:4\.\d+\.\d+", kafka["image"])
    env = environment("kafka")
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@")
    # The consumer's transactions need the transaction log on the one node there is.
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "1"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"


def test_postgres_is_version_15() -> None:
    assert service("postgres")["image"] == "postgres:15"


@pytest.mark.parametrize(
    ("name", "command"), [(n, n) for n in ("migrate", "stream")] + [("consumer", "consume")]
)
def test_our_services_run_the_store_publish_command_from_the_dockerfile(
    name: str, command: str
) -> None:
    ours = service(name)
    assert ours["build"] in (".", {"context": "."})
    assert ours["command"] == [command]


def test_dockerfile_installs_the_package_on_python_311_slim_with_the_cli_entry_point() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim\s*$", dockerfile, re.MULTILINE)
    assert re.search(r"^RUN pip install \.", dockerfile, re.MULTILINE)
    assert 'ENTRYPOINT ["store-publish"]' in dockerfile
    for package in ("schemas", "consumers", "streams", "ops"):
        assert re.search(rf"^COPY {package} ", dockerfile, re.MULTILINE), package


def test_migrations_finish_before_the_consumer_and_stream_start() -> None:
    assert service("migrate")["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert service("migrate")["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("consumer", "stream"):
        depends = service(name)["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize("name", OURS)
def test_every_variable_set_on_our_services_is_a_settings_field(name: str) -> None:
    fields = {field.upper() for field in Settings.model_fields}
    unknown = set(environment(name)) - fields
    assert not unknown, f"{name} sets variables Settings never reads: {sorted(unknown)}"


@pytest.mark.parametrize("name", OURS)
def test_our_services_environment_parses_as_settings(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    operator = {"EVENT_SIGNING_SECRET": "operator-secret"}
    for key in {field.upper() for field in Settings.model_fields}:
        monkeypatch.delenv(key, raising=False)
    for key, value in environment(name).items():
        monkeypatch.setenv(key, interpolate(value, operator))
    settings = Settings(_env_file=None)
    # Reachable by Prometheus from its own container.
    assert settings.http_host == "0.0.0.0"  # noqa: S104
    assert settings.event_signing_secret is not None
    assert settings.publish_required_steps == ("payments",)


def test_compose_refuses_to_start_without_a_signing_secret() -> None:
    # An empty EVENT_SIGNING_SECRET would leave requests unauthenticated.
    for name in OURS:
        raw = environment(name)["EVENT_SIGNING_SECRET"]
        with pytest.raises(AssertionError, match="requires EVENT_SIGNING_SECRET"):
            interpolate(raw, {})
        with pytest.raises(AssertionError, match="requires EVENT_SIGNING_SECRET"):
            interpolate(raw, {"EVENT_SIGNING_SECRET": ""})


def test_consumer_and_stream_share_kafka_database_and_topic_settings() -> None:
    def shared(name: str) -> dict[str, str]:
        return {k: v for k, v in environment(name).items() if k.startswith(SHARED_PREFIXES)}

    consumer = shared("consumer")
    assert {"DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "TOPIC_OUTCOMES"} <= set(consumer)
    assert shared("stream") == consumer
    assert shared("migrate") == consumer


def test_services_point_at_the_compose_kafka_and_postgres() -> None:
    env = environment("consumer")
    kafka_env = environment("kafka")
    assert env["KAFKA_BOOTSTRAP_SERVERS"] in {
        listener.split("://", 1)[1]
        for listener in kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    }
    database = urlsplit(interpolate(env["DATABASE_URL"], {}))
    postgres_env = environment("postgres")
    assert database.hostname == "postgres"
    assert database.username == postgres_env["POSTGRES_USER"]
    assert database.password == interpolate(postgres_env["POSTGRES_PASSWORD"], {})
    assert database.path == f"/{postgres_env['POSTGRES_DB']}"


@pytest.mark.parametrize(
    ("name", "variable"), [("consumer", "CONSUMER_HTTP_PORT"), ("stream", "STREAM_HTTP_PORT")]
)
def test_health_and_metrics_port_is_the_one_published(name: str, variable: str) -> None:
    port = environment(name)[variable]
    assert f"{port}:{port}" in service(name)["ports"]


def prometheus_mounts() -> dict[str, Path]:
    """Container path -> repository file, for the bind mounts of the Prometheus service."""
    mounts: dict[str, Path] = {}
    for volume in service("prometheus")["volumes"]:
        source, target = str(volume).split(":")[:2]
        if source.startswith("./"):
            mounts[target] = ROOT / source
    return mounts


def test_prometheus_mounts_the_projects_config_and_alert_rules_from_the_repository() -> None:
    assert service("prometheus")["image"].startswith("prom/prometheus")
    mounts = prometheus_mounts()
    assert {path.name for path in mounts.values()} >= {"prometheus.yml", "alerts.yml"}
    missing = [str(path.relative_to(ROOT)) for path in mounts.values() if not path.is_file()]
    assert not missing, f"mounted into Prometheus but not in the repository: {missing}"


def test_prometheus_rule_files_are_mounted_and_scrape_our_services() -> None:
    mounts = prometheus_mounts()
    config_file = mounts["/etc/prometheus/prometheus.yml"]
    config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    rule_files = config.get("rule_files", [])
    assert rule_files, "prometheus.yml loads no rule files"
    for rule_file in rule_files:
        target = str(Path("/etc/prometheus") / rule_file)
        assert target in mounts, f"{rule_file} is not mounted into the container"
        rules = yaml.safe_load(mounts[target].read_text(encoding="utf-8"))
        assert rules["groups"], f"{rule_file} has no rule groups"
    targets = {
        target
        for job in config.get("scrape_configs", [])
        for static in job.get("static_configs", [])
        for target in static.get("targets", [])
    }
    assert f"consumer:{environment('consumer')['CONSUMER_HTTP_PORT']}" in targets
    assert f"stream:{environment('stream')['STREAM_HTTP_PORT']}" in targets
    assert f"gateway:{environment('gateway')['GATEWAY_HTTP_PORT']}" in targets


# --- docker-compose.cluster.yml: the same pipeline on three brokers ------------------------

CLUSTER = ROOT / "docker-compose.cluster.yml"
BROKERS = ("kafka", "kafka-2", "kafka-3")


def merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Compose's merge of a second file over the first, for mappings (what is checked here)."""
    result = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result


def cluster_service(name: str) -> dict[str, Any]:
    over = yaml.safe_load(CLUSTER.read_text(encoding="utf-8"))
    base = compose()["services"].get(name, {})
    found = merged(base, over["services"].get(name, {}))
    assert isinstance(found, dict)
    return found


def cluster_environment(name: str) -> dict[str, str]:
    return {str(k): str(v) for k, v in cluster_service(name).get("environment", {}).items()}


def test_the_cluster_is_three_kraft_nodes_with_one_quorum_and_one_cluster_id() -> None:
    envs = [cluster_environment(name) for name in BROKERS]
    assert sorted(env["KAFKA_NODE_ID"] for env in envs) == ["1", "2", "3"]
    voters = {env["KAFKA_CONTROLLER_QUORUM_VOTERS"] for env in envs}
    assert len(voters) == 1
    assert {voter.split("@")[0] for voter in voters.pop().split(",")} == {"1", "2", "3"}
    assert len({env["CLUSTER_ID"] for env in envs}) == 1
    for name, env in zip(BROKERS, envs, strict=True):
        assert re.fullmatch(r"apache/kafka:4\.\d+\.\d+", cluster_service(name)["image"])
        assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
        assert f"PLAINTEXT://{name}:9092" in env["KAFKA_ADVERTISED_LISTENERS"]


def test_the_cluster_replicates_everything_three_times_with_two_in_sync() -> None:
    for name in BROKERS:
        env = cluster_environment(name)
        for variable in (
            "KAFKA_DEFAULT_REPLICATION_FACTOR",
            "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
            "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        ):
            assert env[variable] == "3", (name, variable)
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "2"
        assert env["KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE"] == "false"


def test_each_broker_publishes_its_own_host_port_and_keeps_its_own_volume() -> None:
    ports = [tuple(cluster_service(name).get("ports", [])) for name in BROKERS]
    assert len(set(ports)) == len(BROKERS)
    volumes = [str(cluster_service(name)["volumes"][0]).split(":")[0] for name in BROKERS]
    assert len(set(volumes)) == len(BROKERS)


@pytest.mark.parametrize("name", OURS)
def test_on_the_cluster_our_services_bootstrap_from_all_three_and_replicate_topics_three_times(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fields = {field.upper() for field in Settings.model_fields}
    env = cluster_environment(name)
    assert not set(env) - fields
    for key in fields:
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, interpolate(value, {"EVENT_SIGNING_SECRET": "operator-secret"}))
    settings = Settings(_env_file=None)
    advertised = {
        listener.split("://", 1)[1]
        for broker in BROKERS
        for listener in cluster_environment(broker)["KAFKA_ADVERTISED_LISTENERS"].split(",")
        if listener.startswith("PLAINTEXT://")
    }
    assert set(settings.kafka_bootstrap_servers.split(",")) == advertised
    assert settings.topic_replication_factor == 3
    assert settings.topic_min_insync_replicas == 2


def test_on_the_cluster_migrate_and_prometheus_wait_for_all_three_brokers() -> None:
    for name in ("migrate", "prometheus"):
        depends = cluster_service(name)["depends_on"]
        for broker in BROKERS:
            assert depends[broker]["condition"] == "service_healthy", (name, broker)
    assert "postgres" in cluster_service("migrate")["depends_on"]
    assert {"consumer", "stream"} <= set(cluster_service("prometheus")["depends_on"])
