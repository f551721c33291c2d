"""The steady-rate phases: requests offered at a fixed rate, each timed from record to outcome.

The load generator must not compete with what it measures: every request is built and signed
before the clock starts, and about every `TICK_S` it sends what fell due since the last tick
as one record batch per partition (no per-record path through the producer), stamped with
the moment it is handed to Kafka, so the latency is the pipeline's from there. Wake-ups are
what the load costs on this machine (tens of µs of CPU each), hence ticks rather than a send
per request.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import replace

from aiokafka.producer.message_accumulator import BatchBuilder

from consumers.kafka_io import partition_for
from ops.bench.context import Run
from ops.bench.figures import LatencyFigures, PhaseFigures
from ops.bench.load import Request, fast_producer, random_kind, request_for
from ops.bench.otlp_sink import running_sink
from ops.bench.phases import Feed, run_consumer_phase, shared_idle_cores
from ops.bench.probes import TRACING_OFF, free_port
from ops.runtime.tracing import TRACEPARENT
from schemas.settings import Settings

# How often, on average, the load generator sends what fell due: one cycle of the consumer's
# default commit cadence (CONSUMER_COMMIT_INTERVAL_MS), so at 1,000/s about 100 requests at
# a time: a wake-up and a produce request per cycle (the broker's share is counted as the
# broker's). Each gap is drawn between half and one and a half of that: fixed gaps as long
# as the consumer's cycle could fall at the same point of every cycle, and the latency would
# measure that point rather than a steady stream's wait for the next transaction;
# exponential gaps would leave a third of the cycles empty and the others doubled, a lumpier
# load than a steady rate.
TICK_S = Settings.model_fields["consumer_commit_interval_ms"].default / 1000


def planned(run: Run, count: int, rng: random.Random) -> list[Request]:
    """`count` signed requests in the bench's mix, built now, before any clock starts."""
    assert run.population is not None, "seeded first"
    creators = run.population.creators
    return [request_for(run.base, creators, random_kind(rng), rng) for _ in range(count)]


def paced_feed(
    requests: Sequence[Request], rate: float, sent: dict[str, int], rng: random.Random
) -> Feed:
    """A feed offering `requests` at `rate` per second, sent at ticks `TICK_S` apart on
    average (gaps drawn from `rng`); each request's record timestamp (CreateTime:
    when it was sent) is kept in `sent` by event id."""

    async def feed(settings: Settings) -> None:
        topic = settings.topic_requests
        # Batches go out as handed over: a linger would only delay them (docs/bench.md).
        producer = fast_producer(settings, linger_ms=0)
        await producer.start()
        try:
            partitions = sorted(await producer.partitions_for(topic))
            placed = [partition_for(r.key, partitions) for r in requests]
            acks: list[asyncio.Future[object]] = []
            began = time.monotonic()
            done = 0
            while done < len(requests):
                due = min(len(requests), int((time.monotonic() - began) * rate) + 1)
                stamp = int(time.time() * 1000)
                batches: dict[int, BatchBuilder] = {}
                for index in range(done, due):
                    request, partition = requests[index], placed[index]
                    sent[request.event_id] = stamp
                    batch = batches.get(partition)
                    if batch is None:
                        batch = batches[partition] = producer.create_batch()
                    while (
                        batch.append(
                            key=request.key,
                            value=request.value,
                            timestamp=stamp,
                            headers=request.headers,
                        )
                        is None
                    ):
                        acks.append(await producer.send_batch(batch, topic, partition=partition))
                        batch = batches[partition] = producer.create_batch()
                for partition, batch in batches.items():
                    acks.append(await producer.send_batch(batch, topic, partition=partition))
                done = due
                await asyncio.sleep(rng.uniform(TICK_S / 2, TICK_S * 3 / 2))
            await asyncio.gather(*acks)
        finally:
            await producer.stop()

    return feed


def in_traces(requests: Sequence[Request], rng: random.Random) -> list[Request]:
    """Each request with a `traceparent` of its own (sampled), as a traced gateway or
    upstream producer sends it: the consumer continues that trace."""
    return [
        replace(
            request,
            headers=[
                *request.headers,
                (
                    TRACEPARENT,
                    f"00-{rng.getrandbits(128):032x}-{rng.getrandbits(64):016x}-01".encode("ascii"),
                ),
            ],
        )
        for request in requests
    ]


async def run_steady(
    run: Run, phase: str, rate: float, seconds: float, rng: random.Random, *, traced: bool = False
) -> tuple[LatencyFigures, PhaseFigures]:
    """`phase`: requests at `rate` for `seconds` after the warm-up (excluded from the
    quantiles, not from the CPU figures). `traced`: the consumer and the stream trace, through
    the SDK's OTLP/HTTP exporter, to a sink on loopback that drops what it gets
    (`ops.bench.otlp_sink`), and each request comes with a `traceparent` of its own."""
    warmup = int(rate * run.options.warmup_seconds)
    requests = planned(run, warmup + int(rate * seconds), rng)
    idle = await shared_idle_cores(run, run.options.shared_idle_seconds)
    sent: dict[str, int] = {}
    async with AsyncExitStack() as stack:
        environ = TRACING_OFF
        sink = None
        if traced:
            requests = in_traces(requests, rng)
            sink = await stack.enter_async_context(
                running_sink(free_port(), run.workdir / f"{phase}-otlp-sink.log")
            )
            environ = sink.environment()
        figures, follower = await run_consumer_phase(
            run,
            phase,
            requests_topic=run.topic(f"{phase}.requested"),
            expect=len(requests),
            feed=paced_feed(requests, rate, sent, rng),
            offered_rate=rate,
            # The lag at a steady rate moves slowly; a sample is a dozen requests to the
            # broker and a scrape of each stream worker's /metrics, made for the chart and
            # paid by the processes measured. Every 5 s is still four samples a phase, and
            # nearer a Prometheus scrape interval.
            sample_interval_s=5.0,
            environ=environ,
        )
        if sink is not None:
            # The children have stopped: their batch processors flushed on the way out.
            figures.trace_export = await sink.received()
    figures.shared_idle_cores = idle
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
    return LatencyFigures.of(record_ms, visible_ms, waiting_ms, rate, seconds), figures
