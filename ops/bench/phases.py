"""The benchmark's phases, each on fresh topics and databases of its own run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer

from ops.bench.context import PARTITIONS, Run
from ops.bench.cpu import cpu_snapshot, cpu_used
from ops.bench.figures import PhaseFigures
from ops.bench.load import (
    Request,
    copy_database,
    database_url,
    fast_producer,
    preload,
)
from ops.bench.poll_steps import PollSteps, poll_steps
from ops.bench.probes import (
    TRACING_OFF,
    Child,
    LagSampler,
    OutcomeReader,
    free_port,
    stream_counted,
    stream_group_settled,
    wait_until,
)
from ops.bench.profile import Recording, say_profiles, start_profiles
from ops.bench.storage import bytes_per_request_line
from ops.runtime.pause_switch import set_paused
from ops.runtime.topics import create_topics
from schemas.settings import Settings


async def run_passthrough(run: Run, topic: str, count: int) -> PhaseFigures:
    """Copy `count` records from `topic` to another, as fast as aiokafka goes."""
    settings = run.base
    target = run.topic("passthrough.copy")
    await create_topics(settings, [target], PARTITIONS)
    sources = run.cpu_sources([])
    consumer = AIOKafkaConsumer(
        topic,
        **settings.kafka_client_options(),
        group_id=run.topic("passthrough"),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    producer = fast_producer(settings, linger_ms=5)
    await consumer.start()
    await producer.start()
    try:
        before = cpu_snapshot(sources)
        first: float | None = None
        pending: list[asyncio.Future[Any]] = []
        per_second: dict[int, int] = {}
        while len(pending) < count:
            batches = await consumer.getmany(timeout_ms=200, max_records=1000)
            if batches and first is None:
                first = time.time()
            for records in batches.values():
                for record in records:
                    pending.append(
                        await producer.send(
                            target, value=record.value, key=record.key, headers=list(record.headers)
                        )
                    )
            second = int(time.time())
            per_second[second] = per_second.get(second, 0) + sum(map(len, batches.values()))
        await asyncio.gather(*pending)
        last = time.time()
        used = cpu_used(before, cpu_snapshot(sources))
    finally:
        await producer.stop()
        await consumer.stop()
    assert first is not None
    return PhaseFigures(
        name="passthrough",
        requests=count,
        seconds=last - first,
        statuses={"copied": count},
        cpu_seconds=used,
        per_second=sorted(per_second.items()),
    )


Feed = Callable[[Settings], Coroutine[Any, Any, None]]


async def run_consumer_phase(
    run: Run,
    phase: str,
    *,
    requests_topic: str,
    expect: int,
    workers: int = 1,
    stream_workers: int = 1,
    feed: Feed | None = None,
    offered_rate: float | None = None,
    sample_interval_s: float = 0.25,
    environ: Mapping[str, str] = TRACING_OFF,
    **extra: object,
) -> tuple[PhaseFigures, OutcomeReader]:
    """The consumer(s) and the stream worker(s) as child processes, with `environ` (their
    `OTEL_*` variables), until `expect` outcomes are out, then until the stream has counted
    them all."""
    dsn = await copy_database(run.base.dsn(), run.template, f"bench_{run.run_id}_{phase}")
    run.databases.append(f"bench_{run.run_id}_{phase}")
    settings = run.settings(phase, requests_topic, dsn, **extra)
    await create_topics(
        settings,
        [t for t in (requests_topic, settings.topic_outcomes, settings.topic_dlq) if t],
        PARTITIONS,
    )
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    await set_paused(pool, paused=True, reason="bench: waiting for the group", changed_by="bench")
    # Each worker on a port of its own; the first keeps the phase's.
    ports = [settings.stream_http_port, *(free_port() for _ in range(stream_workers - 1))]
    streams = [
        Child(
            f"{phase}-stream" + (f"-{i + 1}" if stream_workers > 1 else ""),
            "stream",
            settings.model_copy(update={"stream_http_port": port}),
            run.workdir,
            environ,
        )
        for i, port in enumerate(ports)
    ]
    consumers = [
        Child(f"{phase}-consumer-{i + 1}", "consume", settings, run.workdir, environ)
        for i in range(workers)
    ]
    children = [*streams, *consumers]
    stop = asyncio.Event()
    follower = OutcomeReader(settings)
    sampler = LagSampler(settings, follower, ports, interval=sample_interval_s)
    tasks: list[asyncio.Task[None]] = []
    recordings: list[Recording] = []
    steps: PollSteps | None = None

    def alive() -> None:
        for child in children:
            child.check_alive()

    def all_assigned() -> bool:
        alive()
        held = [c.assigned() for c in consumers]
        return all(held) and sum(len(h or []) for h in held) == PARTITIONS

    try:
        await wait_until(
            lambda: all(s.logged("Rates stream started") for s in streams), 120.0, "the stream"
        )
        await wait_until(all_assigned, 120, f"{workers} consumer(s) holding every partition")
        deadline = time.monotonic() + 120
        while not await stream_group_settled(settings.http_host, ports):
            alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"the {stream_workers} stream worker(s) never shared the work")
            await asyncio.sleep(0.2)
        tasks = [asyncio.create_task(follower.run(stop)), asyncio.create_task(sampler.run(stop))]
        recordings = start_profiles(run.options.profile_dir, children)
        sources = run.cpu_sources(children)
        before, began = cpu_snapshot(sources), time.monotonic()
        await set_paused(pool, paused=False, reason=None, changed_by="bench")
        if feed is not None:
            tasks.append(asyncio.create_task(feed(settings)))
        await follower.wait_for(expect, within_s=max(300.0, expect / 100), alive=alive)
        after, span_s = cpu_snapshot(sources), time.monotonic() - began
        steps = await poll_steps(
            settings.http_host, [port for c in consumers if (port := c.http_port()) is not None]
        )
        for recording in recordings:
            recording.stop()
        # Let the stream count the last outcomes, so its lag is seen to come back down.
        await asyncio.sleep(sampler.interval)
        await _stream_caught_up(sampler, within_s=30)
        # And evaluate them, so the window is seen to hold them: a partial goes to the
        # evaluator within a fifth of an interval, and is evaluated within one more.
        await _window_caught_up(sampler, 2.5 * settings.alert_evaluate_interval_seconds)
    finally:
        for recording in recordings:
            recording.stop()
        await pool.close()
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for child in children:
            child.stop()
    for child in children:
        if child.errors:
            run.say(
                f"  {child.name} logged {len(child.errors)} error line(s), first: {child.errors[0]}"
            )
    say_profiles(run.say, recordings)
    if phase == "pipeline":  # bytes the ledger and analytics rows take per request
        run.say(await bytes_per_request_line(dsn, follower.count))
    used = cpu_used(before, after)
    for role, group in (("consumer", consumers), ("stream", streams)):
        if len(group) > 1:
            used[f"{phase}-{role}"] = round(sum(used.get(c.name) or 0.0 for c in group), 2)
    start_ms = follower.first_receipt_ms
    return (
        PhaseFigures(
            name=phase,
            requests=follower.count,
            seconds=(follower.last_timestamp_ms - start_ms) / 1000,
            statuses=dict(follower.statuses),
            cpu_seconds={_role(name, phase): value for name, value in used.items()},
            per_second=sorted(follower.per_second.items()),
            lag=sampler.samples,
            workers=workers,
            stream_workers=stream_workers,
            evaluate_interval_s=settings.alert_evaluate_interval_seconds,
            poll_steps=steps,
            cpu_span_s=round(span_s, 2),
            offered_rate=offered_rate,
        ),
        follower,
    )


async def shared_idle_cores(run: Run, seconds: float) -> dict[str, float | None]:
    """The broker's and PostgreSQL's CPU, in cores, over `seconds` with no phase running:
    what others sharing them (and their own housekeeping) cost meanwhile."""
    sources = {k: v for k, v in run.cpu_sources([]).items() if k in ("broker", "postgres")}
    before, began = cpu_snapshot(sources), time.monotonic()
    await asyncio.sleep(seconds)
    used = cpu_used(before, cpu_snapshot(sources))
    span = time.monotonic() - began
    return {k: round(v / span, 3) if v is not None else None for k, v in used.items()}


def _role(name: str, phase: str) -> str:
    return name.removeprefix(f"{phase}-")


async def _stream_caught_up(sampler: LagSampler, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        # Counted by the stream's own counters: its committed offsets stop short of the
        # trailing transaction markers, and faust commits past gaps slowly (see docs/bench.md).
        last = sampler.samples[-1] if sampler.samples else None
        if last is not None and last.outcomes and last.stream_counted_lag == 0:
            return
        await asyncio.sleep(0.25)


async def _window_caught_up(sampler: LagSampler, within_s: float) -> None:
    """Until the evaluated window holds every outcome seen, or `within_s` (a phase longer
    than the window never gets there; the figures then say how far it got)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        last = sampler.samples[-1] if sampler.samples else None
        window = last.window_outcomes if last is not None else None
        if last is not None and last.outcomes and window is not None and window >= last.outcomes:
            return
        await asyncio.sleep(sampler.interval)


async def run_stream_alone(run: Run, outcomes_topic: str, expect: int) -> PhaseFigures:
    """The rates stream by itself, as a new group over the outcomes the pipeline phase wrote:
    how fast this stream goes here with nothing else to share the cores with. Timed from the
    last moment it had counted nothing (its start, group join and table recovery excluded,
    to within a sampling interval of 0.1 s) to the moment it had counted them all.

    Its fetches wait 100 ms at most, not `STREAM_FETCH_MAX_WAIT_MS`: over a backlog every
    fetch but the last fills its minimum at once, and the last one, short of it, would wait
    out the whole wait for records that never come. With the default second, the last 2 %
    of a 30,000-outcome backlog took as long as the first 98 %."""
    phase = "stream-alone"
    settings = run.settings(
        phase,
        run.topic(f"{phase}.requested"),
        database_url(run.base.dsn(), f"bench_{run.run_id}_pipeline"),
        topic_outcomes=outcomes_topic,
        stream_fetch_max_wait_ms=100,
    )
    await create_topics(settings, [settings.topic_alerts], PARTITIONS)
    stream = Child(f"{phase}-stream", "stream", settings, run.workdir)
    recordings: list[Recording] = []
    per_second: dict[int, int] = {}
    try:
        await wait_until(lambda: stream.logged("Rates stream started"), 120.0, "the stream")
        recordings = start_profiles(run.options.profile_dir, [stream])
        sources = run.cpu_sources([stream])
        deadline = time.monotonic() + max(300.0, expect / 100)
        # The last moment the stream had counted nothing yet: the clock starts there.
        mark = (time.monotonic(), cpu_snapshot(sources))
        counted = 0
        while counted < expect:
            stream.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"the stream counted {counted:,} of {expect:,} outcomes")
            await asyncio.sleep(0.1)
            now_counted = await stream_counted(settings.http_host, settings.stream_http_port)
            if now_counted is None:
                continue
            second = int(time.time())
            per_second[second] = per_second.get(second, 0) + now_counted - counted
            counted = now_counted
            if not counted:
                mark = (time.monotonic(), cpu_snapshot(sources))
        ended = time.monotonic()
        after = cpu_snapshot(sources)
    finally:
        for recording in recordings:
            recording.stop()
        stream.stop()
    say_profiles(run.say, recordings)
    began, before = mark
    return PhaseFigures(
        name=phase,
        requests=expect,
        seconds=ended - began,
        statuses={"counted": expect},
        cpu_seconds={_role(name, phase): v for name, v in cpu_used(before, after).items()},
        per_second=sorted(per_second.items()),
        cpu_per_record_of="stream",
    )


async def run_baseline(run: Run, requests: list[Request]) -> PhaseFigures:
    count = min(run.options.baseline_requests, len(requests))
    topic = run.topic("baseline.requested")
    run.say(
        f"baseline: CONSUMER_MAX_BATCH=1 (one transaction and one awaited Kafka transaction "
        f"per request) on the first {count:,} of the same requests"
    )
    await create_topics(run.base, [topic], PARTITIONS)
    await preload(run.base, topic, requests[:count])
    figures, _ = await run_consumer_phase(
        run, "baseline", requests_topic=topic, expect=count, consumer_max_batch=1
    )
    return figures


async def timed(say: Callable[[str], None], what: str, work: Awaitable[None]) -> None:
    began = time.monotonic()
    await work
    say(f"{what} in {time.monotonic() - began:.1f} s")
