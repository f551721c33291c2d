"""The exactly-once floor: the consumer's Kafka path alone, with nothing to decide.

A child process reads the latency phase's kind of requests with the consumer's own reader
(`requests_reader`: read_committed, the same fetch sizes; no commit cadence) and copies each
poll to another topic with the consumer's own writer (`TransactionalWriter`: the same
producer settings, placement, and offsets in the transaction), one poll at a time, without
validation and without the database. What it measures at `--rate` is the latency no
exactly-once consumer built on this client can beat on this machine: the latency target is
read against it, as throughput is read against the passthrough.

It runs with the machine to itself (no stream, no PostgreSQL work), so it is a floor, not
the consumer's share of the latency phase.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
import uuid
from dataclasses import dataclass

from consumers.kafka_io import TransactionalWriter, requests_reader
from consumers.outcomes import OutboundRecord
from ops.bench.context import PARTITIONS, Run
from ops.bench.cpu import cpu_seconds
from ops.bench.figures import latency_quantiles
from ops.bench.latency import paced_feed, planned
from ops.bench.probes import wait_until
from ops.oncall.topic_reader import following
from ops.runtime.signals import stop_on_signals
from ops.runtime.topics import create_topics
from schemas.settings import Settings

# The copy carries its request's record timestamp, so the reader needs no mapping.
SENT_HEADER = "bench-request-timestamp-ms"
_READY = "Floor copying"


@dataclass(frozen=True)
class FloorFigures:
    rate: float
    measured: int
    # Copy record timestamp minus request record timestamp; and until a read_committed
    # reader saw the copy.
    record_ms: dict[str, float | None]
    visible_ms: dict[str, float | None]
    cpu_us_per_record: float | None

    def line(self) -> str:
        r, v = self.record_ms, self.visible_ms
        cpu = f"{self.cpu_us_per_record:.0f}" if self.cpu_us_per_record is not None else "?"
        return (
            f"  exactly-once floor at {self.rate:,.0f}/s ({self.measured:,} requests; the "
            f"consumer's Kafka path alone, no database, no validation): p50 {r['p50']} ms, "
            f"p95 {r['p95']} ms, p99 {r['p99']} ms (record timestamps); committed and read "
            f"back: p50 {v['p50']} ms, p99 {v['p99']} ms; copier CPU {cpu} µs per request"
        )

    def as_json(self) -> dict[str, object]:
        return {
            "rate": self.rate,
            "measured": self.measured,
            "record_ms": self.record_ms,
            "visible_ms": self.visible_ms,
            "cpu_us_per_record": self.cpu_us_per_record,
        }


async def copy_in_transactions(settings: Settings, stop: asyncio.Event) -> None:
    """From `topic_requests` to `topic_outcomes`, a Kafka transaction per poll, until `stop`."""
    consumer = requests_reader(settings)
    consumer.subscribe([settings.topic_requests])
    writer = TransactionalWriter(settings, f"{settings.consumer_group}-{uuid.uuid4().hex[:8]}")
    await consumer.start()
    await writer.start()
    said = False
    try:
        while not stop.is_set():
            batches = await consumer.getmany(
                timeout_ms=200, max_records=settings.consumer_max_batch
            )
            if not said and consumer.assignment():
                print(json.dumps({"message": _READY}), flush=True)
                said = True
            if not batches:
                continue
            records = [
                OutboundRecord(
                    settings.topic_outcomes,
                    record.key,
                    record.value,
                    ((SENT_HEADER, str(record.timestamp).encode()),),
                )
                for batch in batches.values()
                for record in batch
            ]
            offsets = {tp: batch[-1].offset + 1 for tp, batch in batches.items()}
            await writer.commit(records, offsets)
    finally:
        await writer.stop()
        await consumer.stop()


async def run_floor(run: Run, rng: random.Random) -> FloorFigures:
    """The copier at the latency phase's rate, for as long, after the same warm-up."""
    options = run.options
    source, target = run.topic("floor.requested"), run.topic("floor.copied")
    await create_topics(run.base, [source, target], PARTITIONS)
    settings = run.base.model_copy(
        update={
            "topic_requests": source,
            "topic_outcomes": target,
            "consumer_group": run.topic("floor"),
            # As fast as it can, a transaction per poll: no commit cadence, and so no paced
            # fetch (consumers.kafka_io.requests_reader).
            "consumer_commit_interval_ms": 0,
        }
    )
    warmup = int(options.rate * options.warmup_seconds)
    total = warmup + int(options.rate * options.latency_seconds)
    requests = planned(run, total, rng)
    log_path = run.workdir / "floor.log"
    with log_path.open("ab") as log:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ops.bench.floor",
            env=settings.child_environment(),
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
    seen: list[tuple[int, float, float]] = []
    try:
        await wait_until(lambda: _READY in log_path.read_text(errors="replace"), 60, "the copier")
        cpu_before = cpu_seconds(child.pid)
        async with following(settings, target) as reader:
            feeding = asyncio.create_task(paced_feed(requests, options.rate, {}, rng)(settings))
            deadline = time.monotonic() + options.warmup_seconds + options.latency_seconds + 60
            while len(seen) < total:
                if time.monotonic() > deadline or child.returncode is not None:
                    raise RuntimeError(f"the copier copied {len(seen)} of {total}; see {log_path}")
                batches = await reader.getmany(timeout_ms=100, max_records=5000)
                now_ms = time.time() * 1000
                for batch in batches.values():
                    for record in batch:
                        sent = int(dict(record.headers)[SENT_HEADER])
                        seen.append((sent, record.timestamp - sent, now_ms - sent))
            await feeding
        cpu_after = cpu_seconds(child.pid)
    finally:
        if child.returncode is None:
            child.terminate()
        await asyncio.wait_for(child.wait(), 60)
    measured = sorted(seen)[warmup:]
    cpu = (
        (cpu_after - cpu_before) / total * 1e6
        if cpu_after is not None and cpu_before is not None
        else None
    )
    return FloorFigures(
        options.rate,
        len(measured),
        latency_quantiles([r for _, r, _ in measured]),
        latency_quantiles([v for _, _, v in measured]),
        round(cpu, 1) if cpu is not None else None,
    )


async def _main() -> None:
    await copy_in_transactions(Settings(), stop_on_signals())


if __name__ == "__main__":
    asyncio.run(_main())
