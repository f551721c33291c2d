"""Helpers for the on-call tools' tests: dead letters built by hand, the CLI.

Dead letters are produced to the test's own dead-letter topic with the headers the
consumer adds, so the filters and the replay are tested without depending on the consumer.
The CLI runs through tests/helpers/cli.py with the test's settings in its environment, as
an operator would have them set.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from schemas.dead_letter import DeadLetterHeaders
from schemas.events import Reason
from schemas.requests import publish_request, request_value
from schemas.settings import Settings
from tests.helpers.cli import Ran, store_publish
from tests.helpers.support import producer_for


def store_uuid(label: str) -> uuid.UUID:
    """The store id a label stands for: itself when it is a UUID, else one derived from it."""
    try:
        return uuid.UUID(label)
    except ValueError:
        return uuid.uuid5(uuid.NAMESPACE_URL, f"store:{label}")


@dataclass(frozen=True)
class Letter:
    """A dead letter to produce: the request as received, and why it failed."""

    reason: Reason
    store_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    correlation_id: str = field(default_factory=lambda: f"corr-{uuid.uuid4().hex[:8]}")
    minutes_ago: float = 1.0
    replay_count: int | None = None
    original: tuple[tuple[str, bytes], ...] = (("traceparent", b"00-trace-01"),)
    value: bytes | None = None
    error: str = "boom"

    def body(self) -> bytes:
        if self.value is not None:
            return self.value
        # A valid request: the key keeps the test's store label, the body names a UUID for it.
        return request_value(
            publish_request(
                uuid.uuid4(),
                store_uuid(self.store_id),
                event_id=uuid.uuid5(uuid.NAMESPACE_URL, self.correlation_id),
                correlation_id=self.correlation_id,
            )
        )

    def headers(self) -> list[tuple[str, bytes]]:
        headers = list(self.original)
        if self.replay_count is not None:
            headers.append(("replay.count", str(self.replay_count).encode()))
        return (
            headers
            + DeadLetterHeaders(
                reason=self.reason,
                error=self.error,
                source_topic="store.publish.requested",
                source_partition=0,
                source_offset=0,
                attempts=3,
                failed_at=datetime.now(UTC) - timedelta(minutes=self.minutes_ago),
                correlation_id=self.correlation_id,
            ).to_kafka()
        )


async def produce_dead_letters(settings: Settings, letters: list[Letter]) -> list[str]:
    """Produce `letters` to the dead-letter topic; their PARTITION:OFFSET, in order."""
    positions: list[str] = []
    async with producer_for(settings) as producer:
        for letter in letters:
            sent = await producer.send_and_wait(
                settings.topic_dlq,
                value=letter.body(),
                key=letter.store_id.encode(),
                headers=letter.headers(),
            )
            positions.append(f"{sent.partition}:{sent.offset}")
    return positions


def cli_environment(settings: Settings, **extra: str) -> dict[str, str]:
    """Exactly these settings (`Settings.child_environment`, credentials included), an
    operator's name, and a terminal wide enough that no column is dropped."""
    environment = settings.child_environment()
    environment.update(STORE_PUBLISH_OPERATOR="oncall-1", COLUMNS="200")
    environment.update(extra)
    return environment


async def cli(settings: Settings, *args: str, answer: bytes | None = None, **extra: str) -> Ran:
    """Run `store-publish ARGS`; `answer` is its stdin (None: stdin is closed at once)."""
    environment = cli_environment(settings, **extra)
    stdin = answer.decode() if answer else None
    return await asyncio.to_thread(store_publish, environment, *args, stdin=stdin, timeout=90)


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]
