"""The demo's two later acts, run while its consumer and rates stream keep running.

An outage: PostgreSQL stopped for a few seconds while requests arrive; the consumer holds
them in Kafka and publishes all of them once the database is back, dead-lettering none.
A replay: a request failed after its retries because another session held its store's row,
the lock released, then `store-publish dlq replay`; a failed request is decided afresh, so
the outcome changes and the store is published once.
Each act returns its checks; the accounting is pure (`outage_checks`, `replay_checks`).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
from prometheus_client import CollectorRegistry

from ops.dev.emit import request_producer
from ops.dev.seed import Creator
from ops.oncall.topic_reader import read_until
from schemas.events import PublishOutcome, Reason, Status
from schemas.requests import publish_request, request_key, request_value
from schemas.settings import Settings
from schemas.signing import signature_headers

SERVICES = Path(__file__).resolve().parents[1] / "dev" / "services"
OUTAGE_SECONDS = 4.0
OUTAGE_REQUESTS = 40

Checks = dict[str, bool]


def local_services(settings: Settings, environ: Mapping[str, str] = os.environ) -> bool:
    """True when the demo's database is the one `ops/dev/services` runs (so it may stop it)."""
    try:
        printed = subprocess.run(
            [str(SERVICES), "env"], env=dict(environ), capture_output=True, text=True, timeout=20
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    found = dict(line.split("=", 1) for line in printed.splitlines() if "=" in line)
    if "DATABASE_URL" not in found:
        return False
    ours, theirs = urlsplit(settings.dsn()), urlsplit(found["DATABASE_URL"])
    return (ours.hostname, ours.port) == (theirs.hostname, theirs.port)


def outage_checks(
    sent: Sequence[uuid.UUID],
    answered_while_down: int,
    held_back: bool,
    after: Sequence[PublishOutcome],
    dead_letters_added: int,
) -> Checks:
    mine = [o for o in after if o.request_event_id in set(sent)]
    return {
        f"no outcome while PostgreSQL was down ({answered_while_down})": answered_while_down == 0,
        "the consumer said the database is unavailable": held_back,
        f"outcomes after ({len(mine)}) = requests sent ({len(sent)})": len(mine) == len(sent),
        "every one published": all(o.status is Status.PUBLISHED for o in mine),
        f"dead letters added ({dead_letters_added}) = 0": dead_letters_added == 0,
    }


def replay_checks(
    before: PublishOutcome | None,
    after: Sequence[PublishOutcome],
    replay_exit: int,
    dead_letters_added: int,
) -> Checks:
    published = [o for o in after if o.status is Status.PUBLISHED]
    return {
        "dead-lettered first as failed / retries_exhausted": before is not None
        and (before.status, before.reason) == (Status.FAILED, Reason.RETRIES_EXHAUSTED),
        f"store-publish dlq replay exit code ({replay_exit}) = 0": replay_exit == 0,
        f"published once after the replay ({len(published)})": len(published) == 1
        and len(after) == 1,
        f"no new dead letter ({dead_letters_added})": dead_letters_added == 0,
    }


@dataclass(frozen=True)
class Stage:
    """What an act needs from the demo: its settings, the signing key, the consumer's metrics."""

    settings: Settings
    key: bytes
    registry: CollectorRegistry
    log_path: Path


async def _send(
    stage: Stage, creators: Sequence[Creator], store_id: uuid.UUID | None = None
) -> list[uuid.UUID]:
    ids = []
    async with request_producer(stage.settings) as producer:
        for creator in creators:
            request = publish_request(
                creator.user_id, store_id or creator.store_id, confirm_publish=True
            )
            value = request_value(request)
            await producer.send(
                stage.settings.topic_requests,
                value=value,
                key=request_key(request.store_id),
                headers=signature_headers(value, stage.key),
            )
            ids.append(request.event_id)
        await producer.flush()
    return ids


async def _outcomes(stage: Stage, expect: int, wait_s: float = 60.0) -> list[PublishOutcome]:
    records = await read_until(
        stage.settings, stage.settings.topic_outcomes, expect=expect, wait_s=wait_s
    )
    return [PublishOutcome.model_validate_json(r.value or b"") for r in records]


async def _dead_letters(stage: Stage, expect: int, wait_s: float = 5.0) -> int:
    topic = stage.settings.topic_dlq
    return len(await read_until(stage.settings, topic, expect=expect, wait_s=wait_s))


async def _services(stage: Stage, command: str) -> None:
    with stage.log_path.open("a", encoding="utf-8") as log:
        await asyncio.to_thread(
            subprocess.run, [str(SERVICES), command], stdout=log, stderr=log, check=True
        )


async def outage_act(
    stage: Stage, creators: Sequence[Creator], outcomes_so_far: int, dead_so_far: int
) -> Checks:
    await _services(stage, "pg-stop")
    try:
        sent = await _send(stage, creators)
        await asyncio.sleep(OUTAGE_SECONDS)
        available = stage.registry.get_sample_value("store_publish_database_available")
        during = await _outcomes(stage, outcomes_so_far + len(sent), wait_s=0.5)
    finally:
        await _services(stage, "pg-start")
    after = await _outcomes(stage, outcomes_so_far + len(sent))
    answered = sum(1 for o in during if o.request_event_id in set(sent))
    dead = await _dead_letters(stage, dead_so_far + 1, wait_s=2.0)
    return outage_checks(sent, answered, available == 0.0, after, dead - dead_so_far)


async def replay_act(
    stage: Stage, creator: Creator, outcomes_so_far: int, dead_so_far: int
) -> Checks:
    locker = await asyncpg.connect(stage.settings.dsn())
    try:
        # The cause: another session holds the store's row past the consumer's retry budget.
        transaction = locker.transaction()
        await transaction.start()
        await locker.execute("SELECT 1 FROM stores WHERE id = $1 FOR UPDATE", creator.store_id)
        (request_id,) = await _send(stage, [creator])
        first = await _outcomes(stage, outcomes_so_far + 1)
        before = next((o for o in first if o.request_event_id == request_id), None)
        await _dead_letters(stage, dead_so_far + 1, wait_s=30.0)
        await transaction.rollback()  # the cause fixed: the lock released
    finally:
        await locker.close()
    replay_exit = await replay_with_the_cli(stage, str(creator.store_id))
    later = await _outcomes(stage, outcomes_so_far + 2)
    # One key, one partition: the request's outcomes are in the order they were decided.
    replayed = [o for o in later if o.request_event_id == request_id][1:]
    dead = await _dead_letters(stage, dead_so_far + 2, wait_s=1.0)
    return replay_checks(before, replayed, replay_exit, dead - dead_so_far - 1)


def replay_command(store_id: str) -> str:
    return f"store-publish dlq replay --store-id {store_id} --yes"


async def replay_with_the_cli(stage: Stage, store_id: str) -> int:
    """The operator's command, run as the operator would, with the demo's topics."""
    settings = stage.settings
    env = {
        **os.environ,
        "DATABASE_URL": settings.dsn(),
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "TOPIC_REQUESTS": settings.topic_requests,
        "TOPIC_DLQ": settings.topic_dlq,
        "STORE_PUBLISH_OPERATOR": "demo",
        "COLUMNS": "80",
    }
    args = replay_command(store_id).split()[1:]
    with stage.log_path.open("a", encoding="utf-8") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ops.cli", *args, env=env, stdout=log, stderr=log
        )
        return await process.wait()
