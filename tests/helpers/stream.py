"""The rates stream's test kit: outcomes made to order, sent, alerts read back, a worker's
metrics read from its HTTP port, and the fast alert settings the stream tests run on."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from ops.dev.processes import CliProcess
from schemas.events import PublishOutcome, Reason, Status
from schemas.settings import Settings
from tests.fixtures.settings import MakeSettings
from tests.helpers.support import free_port

REASONS = {
    Status.PUBLISHED: None,
    Status.ALREADY_PUBLISHED: None,
    Status.GATED: Reason.MISSING_STEPS,
    Status.FAILED: Reason.RETRIES_EXHAUSTED,
    Status.REJECTED: Reason.FORBIDDEN,
}


def outcome(
    status: Status = Status.PUBLISHED,
    *,
    attempts: int = 1,
    latency_ms: float = 50.0,
    at: datetime | None = None,
) -> PublishOutcome:
    """A valid outcome of `status`, processed `at` (now by default), with fresh ids."""
    request = uuid.uuid4()
    return PublishOutcome(
        event_id=uuid.uuid4(),
        request_event_id=request,
        correlation_id=str(request),
        user_id=uuid.uuid4(),
        store_id=uuid.uuid4(),
        status=status,
        reason=REASONS[status],
        missing_steps=["payments"] if status is Status.GATED else [],
        attempts=attempts,
        processing_ms=1.0,
        latency_ms=latency_ms,
        processed_at=at if at is not None else datetime.now(UTC),
    )


async def read_alerts(
    settings: Settings, *, expect: int, wait_s: float
) -> list[ConsumerRecord[bytes, bytes]]:
    """The alerts topic from the beginning, until `expect` records or `wait_s` seconds."""
    consumer = AIOKafkaConsumer(
        settings.topic_alerts,
        **settings.kafka_client_options(),
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        found: list[ConsumerRecord[bytes, bytes]] = []
        deadline = time.monotonic() + wait_s
        while len(found) < expect and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                found.extend(records)
        return found
    finally:
        await consumer.stop()


async def send_outcomes(
    producer: AIOKafkaProducer, settings: Settings, *items: PublishOutcome
) -> None:
    for item in items:
        await producer.send(
            settings.topic_outcomes,
            key=str(item.store_id).encode(),
            value=item.model_dump_json().encode(),
        )
    await producer.flush()


def fast(make_settings: MakeSettings, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "alert_window_seconds": 3.0,
        "alert_min_events": 10,
        "alert_evaluate_interval_seconds": 0.2,
        # Below the interval, as the settings require; still folds a fetch's wake-ups.
        "stream_fetch_max_wait_ms": 100,
        "alert_error_rate_for_seconds": 1.0,
        "alert_slow_for_seconds": 1.0,
        "alert_retry_rate_for_seconds": 1.0,
        "alert_gating_rate_for_seconds": 1.0,
        "alert_rollback_for_seconds": 1.0,
    }
    values.update(overrides)
    return make_settings(**values)


def for_workers(make_settings: MakeSettings, **overrides: object) -> Settings:
    """`fast`, for several stream workers in one group: six partitions to split between them,
    and a window (ten minutes) that holds every outcome the test sends."""
    return fast(make_settings, topic_partitions=6, alert_window_seconds=600.0, **overrides)


async def metric(settings: Settings, name: str) -> float | None:
    """A sample of the stream child's /metrics; None while it does not answer."""
    url = f"http://{settings.http_host}:{settings.stream_http_port}/metrics"

    def read() -> str:
        with urllib.request.urlopen(url, timeout=2) as response:
            return str(response.read().decode())

    try:
        text = await asyncio.to_thread(read)
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    return None


async def health(settings: Settings) -> dict[str, object] | None:
    """The stream child's /health body; None while it does not answer."""
    url = f"http://{settings.http_host}:{settings.stream_http_port}/health"

    def read() -> bytes:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return bytes(response.read())
        except urllib.error.HTTPError as error:  # 503 while not ready: the body still says why
            return bytes(error.read())

    try:
        body = json.loads(await asyncio.to_thread(read))
    except (OSError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def evaluator_of(reports: dict[str, dict[str, object]]) -> str | None:
    """The one worker whose report says it evaluates; None unless exactly one does."""
    evaluating = [name for name, report in reports.items() if report.get("evaluating")]
    return evaluating[0] if len(evaluating) == 1 else None


@dataclass
class StreamWorkers:
    """`store-publish stream` children of one group, each on a port of its own."""

    settings: Settings
    folder: Path
    workers: dict[str, tuple[CliProcess, Settings]] = field(default_factory=dict)

    def start(self, name: str) -> None:
        own = self.settings.model_copy(update={"stream_http_port": free_port()})
        process = CliProcess("stream", own, self.folder / f"{name}.log").start()
        self.workers[name] = (process, own)

    def kill(self, name: str) -> None:
        process, _ = self.workers.pop(name)
        process.kill()

    def stop_all(self) -> None:
        for process, _ in self.workers.values():
            process.stop(timeout=30)

    def check_alive(self) -> None:
        for name, (process, _) in self.workers.items():
            tail = process.log_path.read_text(errors="replace")[-3000:]
            assert process.poll() is None, f"stream worker {name} exited: {tail}"

    async def reports(self) -> dict[str, dict[str, object]]:
        """Each answering worker's /health body, by name."""
        found: dict[str, dict[str, object]] = {}
        for name, (_, own) in self.workers.items():
            body = await health(own)
            if body is not None:
                found[name] = body
        return found

    async def wait_for(
        self, settled: Callable[[dict[str, dict[str, object]]], bool], within_s: float, what: str
    ) -> dict[str, dict[str, object]]:
        """The workers' reports once `settled(reports)` holds; AssertionError after `within_s`."""
        deadline = time.monotonic() + within_s
        reports = await self.reports()
        while time.monotonic() < deadline:
            self.check_alive()
            reports = await self.reports()
            if settled(reports):
                return reports
            await asyncio.sleep(0.2)
        raise AssertionError(f"never {what}: {reports}")

    async def evaluator(self) -> str | None:
        """The one worker that says it evaluates, once exactly one does."""
        return evaluator_of(await self.reports())

    async def metric(self, name: str, sample: str) -> float | None:
        return await metric(self.workers[name][1], sample)

    async def window_reaches(self, expected: int, within_s: float) -> str:
        """Wait until the evaluator's window holds `expected` outcomes; the evaluator's name."""
        deadline = time.monotonic() + within_s
        seen: object = None
        while time.monotonic() < deadline:
            self.check_alive()
            name = await self.evaluator()
            if name is not None:
                seen = await self.metric(name, "store_publish_window_outcomes")
                if seen == expected:
                    return name
            await asyncio.sleep(0.2)
        raise AssertionError(
            f"the window held {seen} outcomes, not {expected}: {await self.reports()}"
        )
