"""`store-publish bench`: throughput and latency of the pipeline, beside the stack's ceiling.

One run, on its own topics (prefix `bench.<run>.`) and databases (copies of one seeded
database, `bench_<run>_*`), all removed at the end:

- passthrough: a plain aiokafka consumer copying the pre-loaded requests to another topic,
  no validation and no database; the ceiling of this stack on this machine;
- pipeline: `store-publish consume` (a child process) from the first request received to
  the last outcome, with `store-publish stream` (another child) counting the same outcomes;
- scale-out (`--workers N`, `--stream-workers M`, either over 1): the same with N consumer
  processes in one group and M stream workers in another, with the stream's lag over time;
- baseline (`--baseline`): the same consumer with CONSUMER_MAX_BATCH=1, one transaction and
  one awaited Kafka transaction per request, on the first `baseline_requests` requests;
- latency: requests offered at a fixed rate; outcome minus request record timestamps, and
  each process's CPU per request at that rate;
- latency, traced (`--tracing`): the same with the consumer and the stream tracing through
  the SDK's OTLP/HTTP exporter to a sink on loopback that drops (`ops.bench.otlp_sink`),
  each request in a trace of its own: each process's CPU per request off and on;
- low rate: the same at `low_rate` (100/s): each process's CPU, the four in cores;
- the exactly-once floor: the same rate through the consumer's Kafka path alone (a copier
  with the consumer's transactional writer, no database, no validation).

Each consumer phase starts with publishing paused (the pause switch) until every consumer
holds its partitions, so group joins are not counted; throughput is the phase's outcome
count over the span from the first request received (outcome timestamp minus its
`processing_ms`) to the last outcome's record timestamp.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
from collections.abc import Callable

from pydantic import SecretStr

from ops.bench.context import PARTITIONS, Run
from ops.bench.cpu import postmaster_pid
from ops.bench.figures import LatencyFigures, PhaseFigures
from ops.bench.floor import run_floor
from ops.bench.gateway import run_gateway_phase
from ops.bench.latency import run_steady
from ops.bench.load import (
    create_seeded_database,
    delete_topics_with_prefix,
    drop_databases,
    plan_requests,
    preload,
)
from ops.bench.options import BenchOptions
from ops.bench.phases import (
    run_baseline,
    run_consumer_phase,
    run_passthrough,
    run_stream_alone,
    timed,
)
from ops.bench.report import Report
from ops.runtime.topics import create_topics
from schemas.settings import Settings


async def run_bench(base: Settings, options: BenchOptions, say: Callable[[str], None]) -> Report:
    """Every phase the options ask for, cleaned up afterwards; returns the figures."""
    if base.event_signing_secret is None:
        base = base.model_copy(update={"event_signing_secret": SecretStr(secrets.token_hex(16))})
    run = Run(base, options, say)
    rng = random.Random(7)
    report = Report(run_id=run.run_id, cores=os.cpu_count() or 0, options=options)
    # Whatever else runs on the machine shows here: the figures are only as quiet as it was.
    report.load_before = os.getloadavg()
    try:
        say(f"bench {run.run_id}: seeding {options.creators:,} creators")
        run.population = await create_seeded_database(base.dsn(), run.template, options.creators)
        run.databases.append(run.template)
        run.pg_pid = await postmaster_pid(base.dsn())
        say(f"pre-loading {options.requests:,} requests into {PARTITIONS} partitions")
        requests = plan_requests(base, run.population, options.requests, rng)
        main_topic = run.topic("requested")
        await create_topics(base, [main_topic], PARTITIONS)
        await timed(say, "pre-loaded", preload(base, main_topic, requests))

        say("passthrough: plain consumer -> producer, no validation, no database")
        report.passthrough = await run_passthrough(run, main_topic, options.requests)
        say(report.passthrough.line())

        say("pipeline: store-publish consume + store-publish stream")
        report.pipeline, _ = await run_consumer_phase(
            run, "pipeline", requests_topic=main_topic, expect=options.requests
        )
        say(report.pipeline.line())

        say("stream alone: store-publish stream, a fresh group over the pipeline's outcomes")
        report.stream_alone = await run_stream_alone(
            run, run.topic("pipeline.outcomes"), expect=report.pipeline.requests
        )
        say(report.stream_alone.line())

        if options.workers > 1 or options.stream_workers > 1:
            say(
                f"scale-out: {options.workers} consumer processes in one group, "
                f"{options.stream_workers} stream worker(s) in another"
            )
            report.scale_out, _ = await run_consumer_phase(
                run,
                f"workers{options.workers}",
                requests_topic=main_topic,
                expect=options.requests,
                workers=options.workers,
                stream_workers=options.stream_workers,
            )
            say(report.scale_out.line())
            for line in report.scale_out.lag_lines():
                say(line)

        if options.baseline:
            report.baseline = await run_baseline(run, requests)
            say(report.baseline.line())

        if options.latency_seconds > 0:
            report.latency, report.latency_phase = await _steady(
                run, "latency", options.rate, options.latency_seconds, rng
            )
            if options.tracing:
                report.latency_traced, report.latency_traced_phase = await _steady(
                    run,
                    "latency-traced",
                    options.rate,
                    options.latency_seconds,
                    rng,
                    traced=True,
                    heading=f"latency, traced: the same at {options.rate:,.0f}/s with the consumer "
                    "and the stream exporting OTLP to a sink on loopback that drops",
                )
                for line in report.tracing_lines():
                    say(line)
            say("exactly-once floor: the same rate through the consumer's Kafka path alone")
            report.floor = await run_floor(run, rng)
            say(report.floor.line())
        if options.low_rate_seconds > 0:
            report.low_rate, report.low_rate_phase = await _steady(
                run, "low-rate", options.low_rate, options.low_rate_seconds, rng
            )
        if options.gateway_clients > 0:
            say(f"gateway: {options.gateway_clients} HTTP clients, POST /api/store/publish")
            report.gateway = await run_gateway_phase(
                run, options.gateway_clients, min(options.gateway_requests, options.creators)
            )
            say(report.gateway.line())
        report.load_after = os.getloadavg()
    except BaseException:
        say(f"bench failed; the processes' logs are in {run.workdir}")
        raise
    else:
        if not options.keep:
            shutil.rmtree(run.workdir, ignore_errors=True)
    finally:
        if not options.keep:
            await delete_topics_with_prefix(base, run.prefix)
            await drop_databases(base.dsn(), run.databases)
    return report


async def _steady(
    run: Run,
    phase: str,
    rate: float,
    seconds: float,
    rng: random.Random,
    *,
    traced: bool = False,
    heading: str | None = None,
) -> tuple[LatencyFigures, PhaseFigures]:
    """A steady-rate phase, announced as it starts (`heading`, else its name, rate and
    length) and its lines said as it ends: latency, poll steps, CPU by process."""
    run.say(heading or f"{phase.replace('-', ' ')}: {rate:,.0f} requests/s for {seconds:g} s")
    figures, measured = await run_steady(run, phase, rate, seconds, rng, traced=traced)
    run.say(figures.line())
    if measured.poll_steps is not None:
        run.say(f"  {phase} phase poll steps, mean ms: {measured.poll_steps.text()}")
    for line in measured.cpu_table():
        run.say(line)
    return figures, measured
