"""A broker of their own for the Kafka security tests: SASL_SSL (SCRAM-SHA-512) beside PLAINTEXT.

`KAFKA_SECURE=1 ops/dev/services kafka-start` in its own SERVICES_HOME (.cache/secure) and ports,
so the broker the other tests use is never restarted with other listeners. Only the broker is
its own: the database under test is not what these tests guard, so each test takes a fresh
one from the shared PostgreSQL (`database_url`), as the integration tests do.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from schemas.settings import Settings
from tests.conftest import isolated_settings

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class SecureBroker:
    """Where the secure listener is and the credentials `ops/dev/services env` printed for it."""

    bootstrap_servers: str
    username: str
    password: str
    cafile: str


def _services(env: dict[str, str], *args: str) -> str:
    return subprocess.run(
        [str(ROOT / "ops" / "services"), *args],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    ).stdout


@pytest.fixture(scope="session")
def secure_broker() -> Iterator[SecureBroker]:
    env = {
        **os.environ,
        "KAFKA_SECURE": "1",
        "SERVICES_HOME": str(ROOT / ".cache" / "secure"),
        "KAFKA_PORT": os.environ.get("SECURE_KAFKA_PORT", "19292"),
    }
    _services(env, "kafka-start")
    try:
        printed = _services(env, "env")
        found = dict(line.split("=", 1) for line in printed.splitlines() if "=" in line)
        yield SecureBroker(
            bootstrap_servers=found["KAFKA_SECURE_BOOTSTRAP_SERVERS"],
            username=found["KAFKA_SASL_USERNAME"],
            password=found["KAFKA_SASL_PASSWORD"],
            cafile=found["KAFKA_SSL_CAFILE"],
        )
    finally:
        _services(env, "down")


def secure_settings(
    services: dict[str, str], database_url: str, broker: SecureBroker, **overrides: object
) -> Settings:
    """Isolated settings whose every Kafka client goes through the SASL_SSL listener."""
    values: dict[str, object] = {
        "kafka_bootstrap_servers": broker.bootstrap_servers,
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": "SCRAM-SHA-512",
        "kafka_sasl_username": broker.username,
        "kafka_sasl_password": broker.password,
        "kafka_ssl_cafile": broker.cafile,
    }
    values.update(overrides)
    return isolated_settings(services, database_url, **values)
