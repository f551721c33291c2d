"""Kafka over SASL_SSL (SCRAM-SHA-512), configured from Settings, against a broker that has it.

The consumer, the topic migration and the test clients all connect through
`Settings.kafka_client_options()`; only the secure listener's address is given to them.
"""

from __future__ import annotations

import logging
import ssl
import subprocess
import uuid
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.conn import create_conn
from aiokafka.errors import KafkaConnectionError, SaslAuthenticationFailed

from ops.dev.services_tool.secure import ca_request
from ops.runtime.roles import Role
from ops.runtime.topics import ensure_topics
from schemas.events import Status
from schemas.settings import Settings
from tests.fixtures.processes import ConsumerProcessFactory
from tests.fixtures.security import MakeSecureRoles
from tests.helpers.services import SecureBroker
from tests.helpers.support import (
    outcomes_by_request,
    request_body,
    running_consumer,
    seed_creator,
    seed_steps,
    send_requests,
)

SECRET = "kafka-security-signing-secret-7d2e"


async def _seed_ready_creator(database_url: str) -> dict[str, object]:
    conn = await asyncpg.connect(database_url)
    try:
        await seed_steps(conn, ("payments",))
        return request_body(await seed_creator(conn))
    finally:
        await conn.close()


async def _connect_once(settings: Settings) -> None:
    """One broker connection with these settings' TLS and SASL options, closed again."""
    options = settings.kafka_client_options()
    host, _, port = str(options.pop("bootstrap_servers")).rpartition(":")
    conn = await create_conn(host, int(port), request_timeout_ms=10_000, **options)
    conn.close()


async def _client_start_is_refused(settings: Settings, caplog: pytest.LogCaptureFixture) -> str:
    """Start a producer with these settings; return what aiokafka logged about the refusal."""
    producer = AIOKafkaProducer(**settings.kafka_client_options(), request_timeout_ms=10_000)
    with (
        caplog.at_level(logging.ERROR, logger="aiokafka"),
        pytest.raises(KafkaConnectionError, match="Unable to bootstrap"),
    ):
        await producer.start()
    await producer.stop()
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("aiokafka"))


def _stranger_ca(directory: Path) -> Path:
    """A CA certificate that signed nothing the broker presents."""
    subprocess.run(
        ["openssl", *ca_request("/CN=stranger CA", days=1)],
        cwd=directory,
        check=True,
        capture_output=True,
    )
    return directory / "ca.pem"


async def test_signed_request_is_published_end_to_end_over_sasl_ssl(
    make_secure_settings: MakeSecureRoles, database_url: str, secure_broker: SecureBroker
) -> None:
    roles = make_secure_settings(event_signing_secret=SECRET)
    settings = roles(Role.MIGRATE)
    assert settings.kafka_client_options()["security_protocol"] == "SASL_SSL"
    created = await ensure_topics(settings)
    assert sorted(created) == sorted(
        [
            settings.topic_requests,
            settings.topic_outcomes,
            settings.topic_dlq,
            settings.topic_alerts,
        ]
    )
    body = await _seed_ready_creator(database_url)

    await send_requests(roles(Role.UPSTREAM), [body], secret=SECRET)
    async with running_consumer(roles(Role.CONSUMER)):
        outcomes = await outcomes_by_request(roles(Role.ANALYTICS), 1)

    outcome = outcomes[uuid.UUID(str(body["event_id"]))]
    assert outcome.status is Status.PUBLISHED
    assert outcome.reason is None


async def test_wrong_scram_password_is_refused_by_the_broker(
    make_secure_settings: MakeSecureRoles,
    database_url: str,
    secure_broker: SecureBroker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = "not-the-" + uuid.uuid4().hex
    settings = make_secure_settings()(Role.UPSTREAM, kafka_sasl_password=wrong)

    with pytest.raises(SaslAuthenticationFailed, match="invalid credentials"):
        await _connect_once(settings)
    logged = await _client_start_is_refused(settings, caplog)
    assert "SaslAuthenticationFailed" in logged
    assert wrong not in caplog.text


async def test_unknown_scram_user_is_refused_by_the_broker(
    make_secure_settings: MakeSecureRoles, database_url: str, secure_broker: SecureBroker
) -> None:
    settings = make_secure_settings()(Role.UPSTREAM, kafka_sasl_username="intruder")

    with pytest.raises(SaslAuthenticationFailed):
        await _connect_once(settings)


async def test_broker_certificate_from_an_unknown_ca_is_refused(
    services: dict[str, str],
    database_url: str,
    secure_broker: SecureBroker,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    make_secure_settings: MakeSecureRoles,
) -> None:
    roles = make_secure_settings()
    stranger = roles(Role.UPSTREAM, kafka_ssl_cafile=str(_stranger_ca(tmp_path)))
    # No CA file: the system's trust store, which has never heard of ops/dev/services' CA.
    system = roles(Role.UPSTREAM, kafka_ssl_cafile=None)

    for settings in (stranger, system):
        with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
            await _connect_once(settings)
    logged = await _client_start_is_refused(stranger, caplog)
    assert "CERTIFICATE_VERIFY_FAILED" in logged


async def test_plaintext_client_gets_nothing_from_the_secure_listener(
    make_secure_settings: MakeSecureRoles, database_url: str, secure_broker: SecureBroker
) -> None:
    settings = make_secure_settings()(Role.UPSTREAM)
    plaintext = settings.model_copy(
        update={"kafka_security_protocol": "PLAINTEXT", "kafka_sasl_mechanism": None}
    )

    producer = AIOKafkaProducer(**plaintext.kafka_client_options(), request_timeout_ms=10_000)
    with pytest.raises(KafkaConnectionError, match="Unable to bootstrap"):
        await producer.start()
    await producer.stop()


async def test_scram_password_never_appears_in_the_consumer_log(
    make_secure_settings: MakeSecureRoles,
    database_url: str,
    secure_broker: SecureBroker,
    tmp_path: Path,
    consumer_process: ConsumerProcessFactory,
) -> None:
    # DEBUG: the most the consumer and aiokafka ever write.
    roles = make_secure_settings(event_signing_secret=SECRET, log_level="DEBUG")
    await ensure_topics(roles(Role.MIGRATE))
    body = await _seed_ready_creator(database_url)
    consumer = consumer_process(roles(Role.CONSUMER), "consumer")
    consumer.start()
    try:
        await send_requests(roles(Role.UPSTREAM), [body], secret=SECRET)
        outcomes = await outcomes_by_request(roles(Role.ANALYTICS), 1)
    finally:
        assert consumer.terminate() == 0, "SIGTERM must drain and exit 0"

    assert outcomes[uuid.UUID(str(body["event_id"]))].status is Status.PUBLISHED
    captured = consumer.log_path.read_bytes()
    assert len(consumer.log_lines()) > 0, "the consumer logged nothing: the search proves nothing"
    # At DEBUG aiokafka logs the SASL exchange itself: the search covered the login.
    assert b"SCRAM-SHA-512" in captured
    assert secure_broker.password(Role.CONSUMER).encode() not in captured
    assert SECRET.encode() not in captured
