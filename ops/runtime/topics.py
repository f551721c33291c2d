"""Creating topics: the contract's four for `store-publish migrate`, and any others (the bench's,
the tests') through the same call."""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from schemas.settings import Settings


def contract_topics(settings: Settings) -> list[str]:
    return [
        settings.topic_requests,
        settings.topic_outcomes,
        settings.topic_dlq,
        settings.topic_alerts,
    ]


async def create_topics(
    settings: Settings, names: Sequence[str], partitions: int | None = None
) -> list[str]:
    """Create those of `names` that do not exist yet (with `partitions`, default the
    configured count); returns the names created."""
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in dict.fromkeys(names) if name not in existing]
        if missing:
            response = await admin.create_topics(
                [
                    NewTopic(
                        name,
                        num_partitions=partitions or settings.topic_partitions,
                        replication_factor=settings.topic_replication_factor,
                    )
                    for name in missing
                ]
            )
            for _name, code, *_ in response.topic_errors:
                # Another process may have created it at the same moment: that is fine.
                if code not in (0, TopicAlreadyExistsError.errno):
                    raise for_code(code)()
        return missing
    finally:
        await admin.close()


async def ensure_topics(settings: Settings) -> list[str]:
    """The contract's topics, created when absent; returns the names created."""
    return await create_topics(settings, contract_topics(settings))
