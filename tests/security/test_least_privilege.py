"""Least privilege on the broker: each role does its job with only its own ACLs
(ops/runtime/roles.py), and is refused the rest with the broker's authorization error,
nothing written.

Every test runs on the secure broker with KRaft's authorizer, in a pipeline of its own whose
roles' ACLs are applied as `store-publish acl apply` applies them (tests/fixtures/security.py).
What a refusal did not write is checked from behind it, as the super user.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaClient, AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
)
from aiokafka.protocol.metadata import MetadataRequest
from aiokafka.structs import TopicPartition
from pydantic import SecretStr

from ops.access.kafka_acls import Acl, default_principals, revoke_acls, role_acls
from ops.db.migrate import migrate_database
from ops.dev.processes import CliProcess
from ops.errors import ExitCode
from ops.oncall.topic_reader import read_until
from ops.runtime.pg_roles import DATABASE_ROLES, role_dsn
from ops.runtime.roles import ANALYTICS_GROUP_PREFIX, Role, transactional_id_prefix
from ops.runtime.topics import ensure_topics
from schemas.settings import Settings
from tests.fixtures.creators import MakeCreators
from tests.fixtures.gateway import MintToken, StartGateway
from tests.fixtures.security import MakeSecureRoles, SecureRoles, secure_roles
from tests.helpers.role_pipeline import SCENARIO_SETTINGS, pipeline_under_roles
from tests.helpers.services import SecureBroker

SECRET = "least-privilege-signing-secret-3f1a"


async def _count(roles: SecureRoles, topic: str) -> int:
    """Records of `topic`, read as the super user (a second to be sure none arrive)."""
    return len(await read_until(roles.admin, topic, expect=10**6, wait_s=1.0))


async def _metadata_error(settings: Settings, topic: str) -> int:
    """The broker's error code for `topic` in a metadata request by this principal."""
    client = AIOKafkaClient(**settings.kafka_client_options())
    try:
        await client.bootstrap()
        answer = await client.send(
            client.get_random_node(), MetadataRequest([topic], allow_auto_topic_creation=False)
        )
    finally:
        await client.close()
    (found,) = answer.to_object()["topics"]
    return int(found["error_code"])


async def _pipeline(make: MakeSecureRoles, **overrides: object) -> SecureRoles:
    roles = make(event_signing_secret=SECRET, **overrides)
    await ensure_topics(roles(Role.MIGRATE))
    return roles


@pytest.fixture(scope="module")
async def shared(secure_broker: SecureBroker) -> SecureRoles:
    """One pipeline for the refusals, which write nothing: its topics made and its ACLs
    applied once (the database is never reached)."""
    roles = secure_roles(secure_broker, "postgresql://nobody@127.0.0.1:1/none")
    await ensure_topics(roles(Role.MIGRATE))
    return roles


WRITES_REFUSED = [
    (Role.UPSTREAM, "topic_outcomes"),
    (Role.UPSTREAM, "topic_dlq"),
    (Role.UPSTREAM, "topic_alerts"),
    (Role.ANALYTICS, "topic_requests"),
    (Role.ANALYTICS, "topic_outcomes"),
    (Role.ANALYTICS, "topic_dlq"),
    (Role.ANALYTICS, "topic_alerts"),
    (Role.GATEWAY, "topic_outcomes"),
    (Role.STREAM, "topic_requests"),
    (Role.ONCALL, "topic_outcomes"),
    (Role.MIGRATE, "topic_requests"),
]


@pytest.mark.parametrize(("role", "topic_setting"), WRITES_REFUSED)
async def test_a_write_outside_the_role_is_refused_and_nothing_is_written(
    shared: SecureRoles, role: Role, topic_setting: str
) -> None:
    roles = shared
    settings = roles(role)
    topic = str(getattr(settings, topic_setting))
    producer = AIOKafkaProducer(**settings.kafka_client_options(), request_timeout_ms=10_000)
    await producer.start()
    try:
        with pytest.raises(TopicAuthorizationFailedError, match=topic):
            await producer.send_and_wait(topic, b'{"forged": true}', key=b"k")
    finally:
        await producer.stop()
    assert await _count(roles, topic) == 0


READS_REFUSED = [Role.UPSTREAM, Role.ANALYTICS, Role.GATEWAY, Role.STREAM, Role.MIGRATE]


@pytest.mark.parametrize("role", READS_REFUSED)
async def test_only_the_consumer_and_on_call_see_the_dead_letters(
    shared: SecureRoles, role: Role
) -> None:
    roles = shared
    settings = roles(role)
    # One dead letter there to be read, written as the super user.
    admin = AIOKafkaProducer(**roles.admin.kafka_client_options())
    await admin.start()
    try:
        await admin.send_and_wait(settings.topic_dlq, b"raw request, user id inside", key=b"k")
    finally:
        await admin.stop()

    reader = AIOKafkaConsumer(**settings.kafka_client_options(), group_id=None)
    await reader.start()
    try:
        reader.assign([TopicPartition(settings.topic_dlq, p) for p in range(3)])
        await reader.seek_to_beginning()
        if role is Role.MIGRATE:
            # It may describe the topic (it creates it), so the refusal comes with the fetch.
            with pytest.raises(TopicAuthorizationFailedError, match=settings.topic_dlq):
                await reader.getmany(timeout_ms=3000)
        else:
            # Not even described: aiokafka logs the refusal and fetches nothing.
            assert await _metadata_error(settings, settings.topic_dlq) == (
                TopicAuthorizationFailedError.errno
            )
            got = await reader.getmany(timeout_ms=3000)
            assert sum(len(records) for records in got.values()) == 0
    finally:
        await reader.stop()
    # The same record, for those whose job it is.
    for allowed in (Role.ONCALL, Role.CONSUMER):
        assert await _metadata_error(roles(allowed), settings.topic_dlq) == 0


async def test_analytics_reads_outcomes_in_its_own_group_but_cannot_join_the_consumers(
    shared: SecureRoles,
) -> None:
    roles = shared
    analytics = roles(Role.ANALYTICS)

    own = AIOKafkaConsumer(
        analytics.topic_outcomes,
        **analytics.kafka_client_options(),
        group_id=f"{ANALYTICS_GROUP_PREFIX}{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
    )
    await own.start()
    try:
        await own.getmany(timeout_ms=1000)
        assert own.assignment(), "analytics could not read outcomes in its own group"
    finally:
        await own.stop()

    # A topic it may read, so that the group alone is what is refused.
    intruder = AIOKafkaConsumer(
        analytics.topic_outcomes,
        **analytics.kafka_client_options(),
        group_id=analytics.consumer_group,
        enable_auto_commit=False,
    )
    with pytest.raises(GroupAuthorizationFailedError, match=analytics.consumer_group):
        await intruder.start()
    await intruder.stop()
    admin = AIOKafkaAdminClient(**roles.admin.kafka_client_options())
    await admin.start()
    try:
        assert await admin.list_consumer_group_offsets(analytics.consumer_group) == {}
    finally:
        await admin.close()


@pytest.mark.parametrize("role", [role for role in Role if role is not Role.CONSUMER])
async def test_only_the_consumer_may_use_its_transactional_ids(
    shared: SecureRoles, role: Role
) -> None:
    roles = shared

    def producer(settings: Settings) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            **settings.kafka_client_options(),
            transactional_id=f"{transactional_id_prefix(settings)}{role.value}:{uuid.uuid4()}",
            enable_idempotence=True,
        )

    refused = producer(roles(role))
    with pytest.raises(TransactionalIdAuthorizationFailed):
        await refused.start()
    await refused.stop()
    allowed = producer(roles(Role.CONSUMER))
    await allowed.start()
    await allowed.stop()


def _consumer_acl(roles: SecureRoles, resource: str, name: str) -> Acl:
    return next(
        acl
        for acl in role_acls(roles.admin, default_principals())
        if acl.role is Role.CONSUMER and acl.resource == resource and acl.name == name
    )


@pytest.mark.parametrize(
    ("resource", "name_setting", "needed"),
    [
        ("group", "consumer_group", "READ on group {}"),
        ("topic", "topic_requests", "READ on topic {}"),
        ("topic", "topic_outcomes", "WRITE on topic {}"),
        ("topic", "topic_dlq", "WRITE on topic {}"),
        ("transactional_id", None, "WRITE on transactional id {}*"),
    ],
)
async def test_a_consumer_missing_an_acl_exits_with_one_line_naming_it(
    make_secure_settings: MakeSecureRoles,
    tmp_path: Path,
    resource: str,
    name_setting: str | None,
    needed: str,
) -> None:
    roles = await _pipeline(make_secure_settings)
    settings = roles(Role.CONSUMER)
    name = (
        str(getattr(settings, name_setting)) if name_setting else transactional_id_prefix(settings)
    )
    revoke_acls(roles.admin, [_consumer_acl(roles, resource, name)])

    consumer = CliProcess("consume", settings, tmp_path / "consumer.log").start()
    assert consumer.process is not None
    code = await asyncio.to_thread(consumer.process.wait, 60)
    lines = consumer.log_path.read_text().splitlines()

    assert code == ExitCode.FORBIDDEN
    said = [line for line in lines if line.startswith("error:")]
    assert said == [
        f"error: Kafka refused User:store-publish-consumer: it needs {needed.format(name)} "
        "(grant the role's ACLs: `store-publish acl apply`, docs/security.md)"
    ]
    assert not any("Traceback" in line for line in lines)


async def test_the_whole_pipeline_runs_with_only_each_roles_acls_and_grants(
    make_secure_settings: MakeSecureRoles,
    database_url: str,
    start_gateway: StartGateway,
    make_creators: MakeCreators,
    mint_token: MintToken,
) -> None:
    """tests/helpers/role_pipeline.py on the authorizing broker: each process its own Kafka
    principal with its role's ACLs, and its own PostgreSQL role."""
    roles = make_secure_settings(**SCENARIO_SETTINGS)
    await ensure_topics(roles(Role.MIGRATE))
    # Migrated once more: the session's template database may predate the roles.
    await migrate_database(database_url)

    def as_role(role: Role) -> Settings:
        if role not in DATABASE_ROLES:  # upstream and analytics never reach the database
            return roles(role)
        return roles(role, database_url=SecretStr(role_dsn(database_url, role)))

    admin = await asyncpg.connect(database_url)
    try:
        await pipeline_under_roles(as_role, admin, make_creators, start_gateway, mint_token)
    finally:
        await admin.close()
