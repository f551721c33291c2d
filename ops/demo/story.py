"""`store-publish demo`: the whole pipeline on a realistic population, with an account at the end.

Each run has topics and a consumer group of its own, so its numbers are its own: every request
sent is counted once in the outcomes, and every refusal once in the dead letters.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import statistics
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

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
from rich.table import Table

from consumers.app import run_consumer
from ops.db.migrate import migrate_database
from ops.dev.emit import key_of, request_producer
from ops.dev.requests import publish_request, request_value
from ops.dev.seed import Population, seed_population
from ops.oncall.topic_reader import following, read_until
from ops.runtime.topics import ensure_topics
from schemas.dead_letter import DeadLetterHeaders
from schemas.events import Alert, PublishOutcome, Status
from schemas.settings import Settings
from schemas.signing import sign
from streams.app import run_stream

DEMO_STEPS = ("payments", "email_verification")


@dataclass
class Plan:
    """The requests to send, and what kind each one is."""

    values: list[tuple[bytes | None, list[tuple[str, bytes]]]] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)


def plan_demo_requests(
    population: Population, count: int, secret: bytes, rng: random.Random, plan: Plan
) -> None:
    """Add `count` requests to the plan: mostly creators publishing their own store, with the
    refusals the contract names."""
    creators = population.creators
    kinds = [
        ("own store", 0.82),
        ("other user's store", 0.04),
        ("unsigned", 0.03),
        ("malformed", 0.03),
        ("not confirmed", 0.02),
        ("unknown store", 0.02),
        ("unknown user", 0.02),
        ("redelivered", 0.02),
    ]
    sent_values = [value for value, _ in plan.values if value is not None]
    for kind in rng.choices([k for k, _ in kinds], weights=[w for _, w in kinds], k=count):
        if kind == "redelivered" and not sent_values:
            kind = "own store"
        owner, other = rng.choice(creators), rng.choice(creators)
        user_id, store_id = owner.user_id, owner.store_id
        if kind == "other user's store":
            user_id = other.user_id if other != owner else uuid.uuid4()
        elif kind == "unknown store":
            store_id = uuid.uuid4()
        elif kind == "unknown user":
            user_id = uuid.uuid4()
        value = request_value(
            publish_request(
                user_id,
                store_id,
                correlation_id=f"demo-{uuid.uuid4().hex[:12]}",
                confirm_publish=kind != "not confirmed",
                notify_customers=rng.random() < 0.3,
            )
        )
        if kind == "malformed":
            value = value[: len(value) // 2]
        elif kind == "redelivered":
            value = rng.choice(sent_values)
        sent_values.append(value)
        headers = [] if kind == "unsigned" else [("signature", sign(value, secret).encode())]
        plan.values.append((value, headers))
        plan.kinds[kind] += 1


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
            "alert_gating_rate_for_seconds": 3.0,
            "alert_gating_rate_threshold": 0.10,
            "consumer_http_port": 0,
            "stream_http_port": 0,
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
    rng = random.Random()
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

    stop, consumer_started, stream_started = asyncio.Event(), asyncio.Event(), asyncio.Event()
    stream = asyncio.create_task(
        run_stream(settings, stop=stop, started=stream_started, registry=CollectorRegistry())
    )
    consumer = asyncio.create_task(
        run_consumer(settings, registry=CollectorRegistry(), stop=stop, started=consumer_started)
    )
    await asyncio.wait_for(asyncio.gather(consumer_started.wait(), stream_started.wait()), 120)
    plan = Plan()
    key_bytes = secret.get_secret_value().encode()
    outcomes: list[PublishOutcome] = []
    began = time.monotonic()
    try:
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
                        plan_demo_requests(population, chunk, key_bytes, rng, plan)
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
        elapsed = time.monotonic() - began
        # Give the rates stream the longest rule duration the demo shortened, and a tick.
        await asyncio.sleep(
            settings.alert_gating_rate_for_seconds + 2 * settings.alert_evaluate_interval_seconds
        )
    finally:
        stop.set()
        await asyncio.gather(consumer, stream)
    refused = sum(1 for o in outcomes if o.status in (Status.REJECTED, Status.FAILED))
    dead = Counter(
        DeadLetterHeaders.from_kafka(list(r.headers)).reason.value
        for r in await read_until(settings, settings.topic_dlq, expect=refused, wait_s=30)
    )
    alerts = [
        Alert.model_validate_json(r.value or b"")
        for r in await read_until(settings, settings.topic_alerts, expect=10_000, wait_s=3)
    ]
    return _summary(console, settings, plan, outcomes, dead, alerts, elapsed)


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


def _summary(
    console: Console,
    settings: Settings,
    plan: Plan,
    outcomes: list[PublishOutcome],
    dead: Counter[str],
    alerts: list[Alert],
    elapsed: float,
) -> bool:
    sent = len(plan.values)
    table = Table(title="Outcomes by status and reason")
    table.add_column("status")
    table.add_column("reason")
    table.add_column("count", justify="right")
    by = Counter((o.status.value, o.reason.value if o.reason else "") for o in outcomes)
    for (status, reason), count in sorted(by.items()):
        table.add_row(status, reason or "-", str(count))
    table.add_row("[b]all[/b]", "", f"[b]{len(outcomes)}[/b]")
    console.print(table)

    sent_table = Table(title="Requests sent, by kind")
    sent_table.add_column("kind")
    sent_table.add_column("count", justify="right")
    for kind, count in plan.kinds.most_common():
        sent_table.add_row(kind, str(count))
    sent_table.add_row("[b]all[/b]", f"[b]{sent}[/b]")
    console.print(sent_table)

    dl_table = Table(title="Dead letters by reason")
    dl_table.add_column("reason")
    dl_table.add_column("count", justify="right")
    for reason, count in dead.most_common():
        dl_table.add_row(reason, str(count))
    dl_table.add_row("[b]all[/b]", f"[b]{sum(dead.values())}[/b]")
    console.print(dl_table)

    total = len(outcomes) or 1
    latencies = sorted(o.latency_ms for o in outcomes)
    p95 = statistics.quantiles(latencies, n=100)[94] if len(latencies) > 1 else 0.0
    console.print(
        f"rates: error {sum(o.status is Status.FAILED for o in outcomes) / total:.2%}, "
        f"retry {sum(o.attempts > 1 for o in outcomes) / total:.2%}, "
        f"gating block {sum(o.status is Status.GATED for o in outcomes) / total:.2%}, "
        f"p95 latency {p95:.0f} ms"
    )
    for alert in alerts:
        console.print(
            f"alert {alert.alert} {alert.state.value} value={alert.value:.3f} "
            f"threshold={alert.threshold} action={alert.action.value}"
        )
    if not alerts:
        console.print("alerts: none raised")
    refused = sum(1 for o in outcomes if o.status in (Status.REJECTED, Status.FAILED))
    ids = [o.request_event_id for o in outcomes if o.request_event_id is not None]
    distinct_requests = len({v for v, _ in plan.values})
    checks = {
        f"outcomes ({len(outcomes)}) = requests sent ({sent})": len(outcomes) == sent,
        f"dead letters ({sum(dead.values())}) = rejected + failed ({refused})": sum(dead.values())
        == refused,
        "each store published by one request": len(
            {o.store_id for o in outcomes if o.status is Status.PUBLISHED}
        )
        == len({o.request_event_id for o in outcomes if o.status is Status.PUBLISHED}),
        f"distinct requests ({distinct_requests}) <= outcomes": len(set(ids)) <= distinct_requests,
    }
    for text, ok in checks.items():
        console.print(("[green]ok[/green] " if ok else "[red]MISMATCH[/red] ") + text)
    console.print(
        f"{len(outcomes)} requests in {elapsed:.1f} s: {len(outcomes) / elapsed:,.0f} per second "
        "(sending included)"
    )
    console.print(
        "inspect this run with: "
        f"TOPIC_DLQ={settings.topic_dlq} TOPIC_REQUESTS={settings.topic_requests} "
        f"CONSUMER_GROUP={settings.consumer_group} store-publish dlq list"
    )
    return all(checks.values())
