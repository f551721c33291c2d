"""ops/k8s agrees with the code: what kubeconform's schemas cannot say.

Each kustomization (the base and the production overlay) is rendered with the kustomize that
ops/dev/bootstrap builds, and its objects are checked against the settings and the shutdown
bounds in the code: the KEDA replica cap is the requests topic's partition count, every
variable is a setting, credentials come from Secrets, probes ask the process's own port, the
grace period outlasts each process's SIGTERM path.
"""

from __future__ import annotations

import subprocess
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from consumers.app import _CLIENT_STOP_TIMEOUT_S
from consumers.loop import SHUTDOWN_GRACE_S
from ops.gateway.app import _SHUTDOWN_TIMEOUT_S as GATEWAY_SHUTDOWN_S
from schemas.settings import Settings
from streams.app import _STOP_TIMEOUT_S as STREAM_STOP_S

ROOT = Path(__file__).resolve().parents[2]
KUSTOMIZE = ROOT / ".tools" / "bin" / "kustomize"
KUSTOMIZATIONS = ("base", "overlays/production")
PORTS = {
    "consumer": "consumer_http_port",
    "stream": "stream_http_port",
    "gateway": "gateway_http_port",
}
LONG_RUNNING = tuple(PORTS)
# KEDA's names for KAFKA_SASL_MECHANISM's values.
KEDA_SASL = {"PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256", "SCRAM-SHA-512": "scram_sha512"}
FIELDS = Settings.model_fields


@pytest.fixture(scope="module", params=KUSTOMIZATIONS)
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    if not KUSTOMIZE.exists():
        # Setup builds it: missing is a broken setup, never a reason to test nothing.
        pytest.fail(f"{KUSTOMIZE.relative_to(ROOT)} missing: run ops/dev/bootstrap (it needs Go)")
    built = subprocess.run(
        [str(KUSTOMIZE), "build", str(ROOT / "ops" / "k8s" / request.param)],
        capture_output=True,
        text=True,
        check=True,
    )
    return [doc for doc in yaml.safe_load_all(built.stdout) if doc]


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [obj for obj in of_kind(objects, kind) if obj["metadata"]["name"] == name]
    return found


def config(objects: list[dict[str, Any]]) -> dict[str, str]:
    (settings,) = of_kind(objects, "ConfigMap")
    assert settings["metadata"]["name"].startswith("store-publish-settings")
    data = settings["data"]
    assert isinstance(data, dict)
    return data


def pod(objects: list[dict[str, Any]], role: str) -> dict[str, Any]:
    kind = "Job" if role == "migrate" else "Deployment"
    spec = one(objects, kind, f"store-publish-{role}")["spec"]["template"]
    assert isinstance(spec, dict)
    return spec


def container(objects: list[dict[str, Any]], role: str) -> dict[str, Any]:
    (only,) = pod(objects, role)["spec"]["containers"]
    assert isinstance(only, dict)
    return only


def port_of(objects: list[dict[str, Any]], role: str) -> int:
    """The port the process serves on, by the settings the pod is given."""
    return int(config(objects).get(PORTS[role].upper(), FIELDS[PORTS[role]].default))


def test_consumer_replicas_are_capped_at_the_requests_topic_partitions(
    rendered: list[dict[str, Any]],
) -> None:
    scaled = one(rendered, "ScaledObject", "store-publish-consumer")["spec"]
    partitions = int(config(rendered)["TOPIC_PARTITIONS"])
    assert partitions == FIELDS["topic_partitions"].default
    assert scaled["maxReplicaCount"] == partitions
    assert 1 <= scaled["minReplicaCount"] <= partitions
    assert scaled["scaleTargetRef"]["name"] == "store-publish-consumer"


def test_keda_reads_the_consumers_own_group_topic_and_brokers(
    rendered: list[dict[str, Any]],
) -> None:
    (trigger,) = one(rendered, "ScaledObject", "store-publish-consumer")["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    given = config(rendered)
    metadata = trigger["metadata"]
    assert metadata["consumerGroupFromEnv"] == "CONSUMER_GROUP" in given
    assert metadata["topicFromEnv"] == "TOPIC_REQUESTS" in given
    assert metadata["bootstrapServersFromEnv"] == "KAFKA_BOOTSTRAP_SERVERS" in given
    # A backlog that one poll clears adds no replica (and no rebalance).
    assert int(metadata["lagThreshold"]) >= FIELDS["consumer_max_batch"].default
    if given["KAFKA_SECURITY_PROTOCOL"].startswith("SASL"):
        assert metadata["sasl"] == KEDA_SASL[given["KAFKA_SASL_MECHANISM"]]
        tls = "enable" if given["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL" else "disable"
        assert metadata["tls"] == tls
        auth = one(rendered, "TriggerAuthentication", trigger["authenticationRef"]["name"])
        assert {ref["name"] for ref in auth["spec"]["secretTargetRef"]} == {
            "store-publish-consumer-kafka"
        }


def test_every_variable_given_is_a_setting_and_parses_as_one(
    rendered: list[dict[str, Any]],
) -> None:
    given = config(rendered)
    for role in (*LONG_RUNNING, "migrate"):
        named = [env["name"] for env in container(rendered, role).get("env", [])]
        unknown = sorted(name for name in [*given, *named] if name.lower() not in FIELDS)
        assert not unknown, f"{role}: not settings: {unknown}"
    placeholders = {"kafka_sasl_username": "user", "kafka_sasl_password": "secret"}
    settings = Settings(
        **{**placeholders, **{name.lower(): value for name, value in given.items()}}
    )
    # Every interface: the kubelet and Prometheus reach /health and /metrics on the pod's IP.
    assert ip_address(settings.http_host).is_unspecified


def test_credentials_come_from_each_workloads_own_secrets(
    rendered: list[dict[str, Any]],
) -> None:
    secret_settings = {
        name.upper()
        for name, field in FIELDS.items()
        if field.annotation in (SecretStr, SecretStr | None)
    } | {"KAFKA_SASL_USERNAME"}
    assert not of_kind(rendered, "Secret"), "no Secret is committed"
    assert not secret_settings & set(config(rendered))
    for role in (*LONG_RUNNING, "migrate"):
        env = {entry["name"]: entry for entry in container(rendered, role)["env"]}
        for name in secret_settings & set(env):
            ref = env[name]["valueFrom"]["secretKeyRef"]["name"]
            shared = name == "EVENT_SIGNING_SECRET" and ref == "store-publish-signing"
            assert shared or ref.startswith(f"store-publish-{role}-"), f"{role} {name}: {ref}"
        assert {"DATABASE_URL", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"} <= set(env)


def test_probes_ask_each_process_on_its_own_port(rendered: list[dict[str, Any]]) -> None:
    for role in LONG_RUNNING:
        spec = container(rendered, role)
        ports = {port["name"]: port["containerPort"] for port in spec["ports"]}
        assert spec["readinessProbe"]["httpGet"]["path"] == "/health"
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert ports[spec[probe]["httpGet"]["port"]] == port_of(rendered, role), role
        annotations = pod(rendered, role)["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/path"] == "/metrics"
        assert int(annotations["prometheus.io/port"]) == port_of(rendered, role)
    service = one(rendered, "Service", "store-publish-gateway")["spec"]
    (target,) = service["ports"]
    assert target["targetPort"] == "http"
    assert (
        service["selector"] == pod(rendered, "gateway")["metadata"]["labels"] | service["selector"]
    )


def test_grace_period_outlasts_each_process_sigterm_path(
    rendered: list[dict[str, Any]],
) -> None:
    def grace(role: str) -> float:
        return float(pod(rendered, role)["spec"]["terminationGracePeriodSeconds"])

    assert grace("consumer") > SHUTDOWN_GRACE_S + _CLIENT_STOP_TIMEOUT_S
    assert grace("stream") > STREAM_STOP_S
    _, seconds = container(rendered, "gateway")["lifecycle"]["preStop"]["exec"]["command"]
    assert grace("gateway") > float(seconds) + GATEWAY_SHUTDOWN_S


def test_the_consumer_disruption_budget_selects_the_consumer_pods_only(
    rendered: list[dict[str, Any]],
) -> None:
    selector = one(rendered, "PodDisruptionBudget", "store-publish-consumer")["spec"]["selector"]
    labels = selector["matchLabels"]
    for role in (*LONG_RUNNING, "migrate"):
        pod_labels = pod(rendered, role)["metadata"]["labels"]
        assert (labels.items() <= pod_labels.items()) == (role == "consumer"), role


def test_every_workload_has_resources_and_its_own_service_account(
    rendered: list[dict[str, Any]],
) -> None:
    accounts = {obj["metadata"]["name"] for obj in of_kind(rendered, "ServiceAccount")}
    for role in (*LONG_RUNNING, "migrate"):
        resources = container(rendered, role)["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]), role
        assert "memory" in resources["limits"], role
        account = pod(rendered, role)["spec"]["serviceAccountName"]
        assert account == f"store-publish-{role}"
        assert account in accounts
