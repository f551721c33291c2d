"""Before the consumer takes a partition: may its principal do what its role needs?

A missing ACL would otherwise show late and quietly: aiokafka logs an unauthorized topic and
fetches nothing, and a transactional id refused on the first commit would be retried as if
the broker were down. So the consumer asks once at start-up, in the broker's own terms, and
a refusal is `NotAuthorized` naming the ACL (`ops.runtime.roles`), which the command turns
into one line and an exit code, never into waiting.
"""

from __future__ import annotations

from aiokafka import AIOKafkaClient
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
)
from aiokafka.protocol.metadata import MetadataRequest

from consumers.kafka_io import fence, new_transactional_id
from ops.runtime.errors import NotAuthorized
from ops.runtime.roles import KafkaGrant, Role, kafka_grants, transactional_id_prefix
from schemas.settings import Settings

_TOPIC_AUTHORIZATION_FAILED = TopicAuthorizationFailedError.errno


def principal(settings: Settings) -> str:
    name = settings.kafka_sasl_username
    return f"User:{name}" if name else "User:ANONYMOUS"


def _grant(settings: Settings, resource: str, name: str) -> KafkaGrant:
    return next(
        grant
        for grant in kafka_grants(Role.CONSUMER, settings)
        if grant.resource == resource and grant.name == name
    )


async def check_kafka_access(settings: Settings) -> None:
    """The topics described without creating any, then a transactional id of the consumer's
    prefix initialised: NotAuthorized names the first ACL the broker refused."""
    who = principal(settings)
    client = AIOKafkaClient(**settings.kafka_client_options())
    try:
        await client.bootstrap()
        topics = [settings.topic_requests, settings.topic_outcomes, settings.topic_dlq]
        answer = await client.send(
            client.get_random_node(), MetadataRequest(topics, allow_auto_topic_creation=False)
        )
    finally:
        await client.close()
    for topic in answer.to_object()["topics"]:
        if topic["error_code"] == _TOPIC_AUTHORIZATION_FAILED:
            raise NotAuthorized(who, _grant(settings, "topic", topic["topic"]).describe())
    try:
        await fence(settings, new_transactional_id(settings, "access-check"))
    except TransactionalIdAuthorizationFailed:
        prefix = _grant(settings, "transactional_id", transactional_id_prefix(settings))
        raise NotAuthorized(who, prefix.describe()) from None


def refusal(settings: Settings, error: BaseException) -> NotAuthorized | None:
    """The reader's start refused for its group: the ACL it needs."""
    if isinstance(error, GroupAuthorizationFailedError):
        group = _grant(settings, "group", settings.consumer_group)
        return NotAuthorized(principal(settings), group.describe())
    return None
