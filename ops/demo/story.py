"""`store-publish demo`: the whole pipeline on a realistic population, with an account at the end.

Each run has topics and a consumer group of its own, so its numbers are its own: every request
sent is counted once in the outcomes, and every refusal once in the dead letters.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from consumers.app import run_consumer
from ops.db.migrate import migrate_database
from ops.demo.account import inspect_command, print_account, print_checks, print_pasteable
from ops.demo.acts import (
    OUTAGE_REQUESTS,
    OUTAGE_SECONDS,
    Stage,
    local_services,
    outage_act,
    replay_act,
    replay_command,
)
from ops.demo.logfile import log_to_file
from ops.demo.plan import Plan, plan_demo_requests
from ops.dev.emit import key_of, request_producer
from ops.dev.seed import Population, seed_population
from ops.oncall.topic_reader import following, read_until
from ops.runtime.topics import ensure_topics
from schemas.dead_letter import DeadLetterHeaders
from schemas.events import Alert, PublishOutcome, Status
from schemas.settings import Settings
from streams.app import run_stream

DEMO_STEPS = ("payments", "email_verification")


def demo_settings(base: Settings, run_id: str) -> Settings:
    return base.model_copy(
        update={
            "topic_requests": f"demo.{run_id}.requested",
            "topic_outcomes": f"demo.{run_id}.outcomes",
            "topic_dlq": f"demo.{run_id}.dlq",
            "topic_alerts": f"demo.{run_id}.alerts",
            "consumer_group": f"demo.{run_id}",
            "publish_required_steps": DEMO_STEPS,
            "event_signing_secret": base.event_signing_secret or SecretStr(secrets.token_hex(16)),
            # Short windows so the demo's few seconds are enough for rates and alerts.
            "alert_window_seconds": 30.0,
            "alert_min_events": 50,
            "alert_evaluate_interval_seconds": 1.0,
            # Below the evaluation interval, as start-up requires (schemas.settings).
            "stream_fetch_max_wait_ms": 500,
            "alert_gating_rate_for_seconds": 3.0,
            "alert_gating_rate_threshold": 0.10,
            "consumer_http_port": 0,
            "stream_http_port": 0,
            # Act 3's locked store fails within a second rather than ten.
            "db_lock_timeout_ms": 300,
            "retry_initial_delay_ms": 100,
            "retry_max_delay_ms": 400,
        }
    )


async def run_demo(
    base: Settings, *, creators: int, requests: int, rate: float, console: Console
) -> bool:
    """Run the demo; True when every request has exactly one outcome and the books balance."""
    run_id = datetime.now(UTC).strftime("%Y%m%d%H%M%S") + "-" + uuid.uuid4().hex[:4]
    settings = demo_settings(base, run_id)
    secret = settings.event_signing_secret
    assert secret is not None
    console.rule(f"store-publish demo {run_id}")
    await migrate_database(settings.dsn())
    await ensure_topics(settings)
    conn = await asyncpg.connect(settings.dsn())
    try:
        population = await seed_population(conn, creators, required_steps=DEMO_STEPS)
    finally:
        await conn.close()
    mix = Counter(c.kind for c in population.creators)
    console.print(f"seeded {creators} creators: " + ", ".join(f"{k} {v}" for k, v in mix.items()))

    log_path = Path(tempfile.gettempdir()) / f"store-publish-demo-{run_id}.log"
    print_pasteable(console, "the pipeline's and its libraries' log lines go to:", str(log_path))
    log_to_file(log_path)
    stop, consumer_started, stream_started = asyncio.Event(), asyncio.Event(), asyncio.Event()
    registry = CollectorRegistry()
    stream = asyncio.create_task(
        run_stream(settings, stop=stop, started=stream_started, registry=CollectorRegistry())
    )
    consumer = asyncio.create_task(
        run_consumer(settings, registry=registry, stop=stop, started=consumer_started)
    )
    stage = Stage(settings, secret.get_secret_value().encode(), registry, log_path)
    try:
        await asyncio.wait_for(asyncio.gather(consumer_started.wait(), stream_started.wait()), 120)
        balanced = await _acts(stage, population, requests, rate, console)
    finally:
        stop.set()
        stopped = await asyncio.gather(consumer, stream, return_exceptions=True)
    for name, result in zip(("consumer", "rates stream"), stopped, strict=True):
        if isinstance(result, BaseException):
            # The account is settled by now; how a process stopped is for the log file.
            logging.getLogger(__name__).error("%s stopped with %r", name, result)
            console.print(f"the {name} stopped with an error: see the log file")
    print_pasteable(console, "inspect this run with:", inspect_command(settings))
    return balanced


async def _acts(
    stage: Stage, population: Population, requests: int, rate: float, console: Console
) -> bool:
    settings = stage.settings
    plan, outcomes, elapsed = await _send_and_follow(stage, population, requests, rate, console)
    # Give the rates stream the longest rule duration the demo shortened, and a tick.
    await asyncio.sleep(
        settings.alert_gating_rate_for_seconds + 2 * settings.alert_evaluate_interval_seconds
    )
    refused = sum(1 for o in outcomes if o.status in (Status.REJECTED, Status.FAILED))
    dead = Counter(
        DeadLetterHeaders.from_kafka(list(r.headers)).reason.value
        for r in await read_until(settings, settings.topic_dlq, expect=refused, wait_s=30)
    )
    alerts = [
        Alert.model_validate_json(r.value or b"")
        for r in await read_until(settings, settings.topic_alerts, expect=10_000, wait_s=3)
    ]
    balanced = print_account(console, settings, plan, outcomes, dead, alerts, elapsed)
    # Stores no request of act 1 named: one named by someone else's request has a dead
    # letter already, which act 3's replay by store would send again.
    named = {o.store_id for o in outcomes}
    fresh = [c for c in population.of_kind("ready") if c.store_id not in named]
    so_far, dead_so_far = len(outcomes), sum(dead.values())

    console.rule("act 2: PostgreSQL stopped while requests arrive")
    if not local_services(settings):
        console.print(
            "skipped: the demo's database is not the one ops/dev/services runs, so it is "
            "not the demo's to stop"
        )
    elif len(fresh) < OUTAGE_REQUESTS + 1:
        console.print("skipped: too few creators left unpublished (seed more with --creators)")
    else:
        console.print(f"pg-stop, {OUTAGE_REQUESTS} requests sent, {OUTAGE_SECONDS:g} s, pg-start:")
        checks = await outage_act(stage, fresh[:OUTAGE_REQUESTS], so_far, dead_so_far)
        balanced = print_checks(console, checks) and balanced
        so_far += OUTAGE_REQUESTS
        fresh = fresh[OUTAGE_REQUESTS:]

    console.rule("act 3: a dead letter replayed after its cause is fixed")
    if not fresh:
        console.print("skipped: no creator left unpublished (seed more with --creators)")
        return balanced
    print_pasteable(
        console,
        "a store's row locked by another session: its request fails after its retries and "
        "is dead-lettered; the lock released; then:",
        replay_command("<its store_id>"),
    )
    checks = await replay_act(stage, fresh[0], so_far, dead_so_far)
    return print_checks(console, checks) and balanced


async def _send_and_follow(
    stage: Stage, population: Population, requests: int, rate: float, console: Console
) -> tuple[Plan, list[PublishOutcome], float]:
    settings, rng, plan = stage.settings, random.Random(), Plan()
    outcomes: list[PublishOutcome] = []
    began = time.monotonic()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        sending = progress.add_task("requests sent", total=requests)
        received = progress.add_task("outcomes", total=requests)
        reader = asyncio.create_task(
            _follow_outcomes(settings, requests, outcomes, progress, received)
        )
        async with request_producer(settings) as producer:
            for index in range(requests):
                if index == len(plan.values):
                    # Planned a little at a time, so occurred_at is close to the moment of
                    # sending and latency means what it says.
                    chunk = min(200, requests - index)
                    plan_demo_requests(population, chunk, stage.key, rng, plan)
                value, headers = plan.values[index]
                await producer.send(
                    settings.topic_requests,
                    value=value,
                    key=key_of(value) if value is not None else None,
                    headers=headers,
                )
                if index % 100 == 99 or index == requests - 1:
                    progress.update(sending, completed=index + 1)
                if rate > 0:
                    ahead = (index + 1) / rate - (time.monotonic() - began)
                    if ahead > 0:
                        await asyncio.sleep(ahead)
            await producer.flush()
        await asyncio.wait_for(reader, timeout=120)
    return plan, outcomes, time.monotonic() - began


async def _follow_outcomes(
    settings: Settings,
    expect: int,
    into: list[PublishOutcome],
    progress: Progress,
    task: TaskID,
) -> None:
    async with following(settings, settings.topic_outcomes) as consumer:
        while len(into) < expect:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                into.extend(PublishOutcome.model_validate_json(r.value or b"") for r in records)
            progress.update(task, completed=len(into))
