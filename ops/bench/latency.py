"""The latency phase: requests offered at a fixed rate, each timed from record to outcome."""

from __future__ import annotations

import asyncio
import random
import time

from ops.bench.context import Run
from ops.bench.figures import LatencyFigures, PhaseFigures
from ops.bench.load import (
    fast_producer,
    random_kind,
    request_for,
)
from ops.bench.phases import Feed, run_consumer_phase
from schemas.settings import Settings


def paced_feed(run: Run, sent: dict[str, int], rng: random.Random) -> Feed:
    """Requests at `options.rate` per second for warm-up plus measured seconds; each request's
    record timestamp (CreateTime) is kept by event id."""
    options = run.options
    total = int(options.rate * (options.warmup_seconds + options.latency_seconds))

    async def feed(settings: Settings) -> None:
        assert run.population is not None
        # Kafka 4 clients linger 5 ms by default; the latency counts it (stamped before send).
        producer = fast_producer(settings, linger_ms=5)
        await producer.start()
        try:
            began = time.monotonic()
            pending = []
            for index in range(total):
                ahead = index / options.rate - (time.monotonic() - began)
                if ahead > 0:
                    await asyncio.sleep(ahead)
                request = request_for(settings, run.population.creators, random_kind(rng), rng)
                stamp = int(time.time() * 1000)
                sent[request.event_id] = stamp
                pending.append(
                    await producer.send(
                        settings.topic_requests,
                        value=request.value,
                        key=request.key,
                        headers=request.headers,
                        timestamp_ms=stamp,
                    )
                )
            await asyncio.gather(*pending)
        finally:
            await producer.stop()

    return feed


async def run_latency(run: Run, rng: random.Random) -> tuple[LatencyFigures, PhaseFigures]:
    options = run.options
    sent: dict[str, int] = {}
    warmup = int(options.rate * options.warmup_seconds)
    total = warmup + int(options.rate * options.latency_seconds)
    figures, follower = await run_consumer_phase(
        run,
        "latency",
        requests_topic=run.topic("latency.requested"),
        expect=total,
        feed=paced_feed(run, sent, rng),
    )
    ordered = sorted(sent.items(), key=lambda item: item[1])[warmup:]
    record_ms: list[float] = []
    visible_ms: list[float] = []
    waiting_ms: list[float] = []
    for event_id, stamp in ordered:
        seen = follower.by_request.get(event_id)
        if seen is not None:
            record_ms.append(seen[0] - stamp)
            visible_ms.append(seen[1] * 1000 - stamp)
            waiting_ms.append(seen[0] - seen[2] - stamp)
    return LatencyFigures.of(record_ms, visible_ms, waiting_ms, options), figures
