"""What the benchmark watches: child processes, outcomes, lag, the stream's counts (CPU
seconds per process: `ops.bench.cpu`)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition
from confluent_kafka import OFFSET_BEGINNING
from confluent_kafka import Consumer as KafkaReader
from confluent_kafka import Message as KafkaMessage
from confluent_kafka import TopicPartition as KafkaPartition

from ops.access.kafka_acls import admin_config
from ops.bench.cpu import cpu_seconds
from ops.dev.processes import CliProcess
from schemas.settings import Settings

# A benchmarked process traces only when its phase says so, whatever the bench's own
# environment has.
TRACING_OFF = {"OTEL_TRACES_EXPORTER": "none"}


class Child(CliProcess):
    """A benchmarked `python -m ops.cli CMD`, started at once in `workdir`; its log there.
    `environ`: the `OTEL_*` variables it runs with (untraced by default)."""

    def __init__(
        self,
        name: str,
        command: str,
        settings: Settings,
        workdir: Path,
        environ: Mapping[str, str] = TRACING_OFF,
    ) -> None:
        super().__init__(command, settings, workdir / f"{name}.log", cwd=workdir, environ=environ)
        self.name = name
        self._scanned = 0
        self.errors: list[str] = []
        self.start()

    def cpu(self) -> float | None:
        return cpu_seconds(self.pid)

    def assigned(self) -> list[int] | None:
        """The partitions of its latest assignment; None before the first."""
        found: list[int] | None = None
        for line in self.log_lines():
            if line.get("message") == "Partitions assigned":
                parts = line.get("partitions")
                found = [int(p) for p in parts] if isinstance(parts, list) else []
        return found

    def http_port(self) -> int | None:
        """The port its health and metrics are served on, once it has said so."""
        for line in self.log_lines():
            port = line.get("httpPort")
            if line.get("message") == "Consumer started" and isinstance(port, int):
                return port
        return None

    def check_alive(self) -> None:
        """Raise when the process has exited; keep the error lines logged since the last check."""
        code = self.poll()
        if code is not None:
            raise RuntimeError(f"{self.name} exited with {code}; its log: {self.log_path}")
        with self.log_path.open("rb") as log:
            log.seek(self._scanned)
            fresh = log.read()
        complete = fresh[: fresh.rfind(b"\n") + 1]
        self._scanned += len(complete)
        for raw in complete.splitlines():
            # A substring test first: the log holds a line per gated request. Client libraries
            # log transient broker errors (a leader moving on a new topic) at error level and
            # recover: they are counted and shown, and only an exit stops the run.
            if b'"level":"error"' in raw:
                self.errors.append(raw[:500].decode(errors="replace"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def wait_until(condition: Callable[[], bool], within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {within_s:.0f} s waiting for {what}")
        await asyncio.sleep(0.1)


@dataclass
class OutcomeReader:
    """Reads the outcomes topic (read_committed) and keeps what the figures need."""

    settings: Settings
    count: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    first_receipt_ms: float = float("inf")
    last_timestamp_ms: int = 0
    last_seen: float = 0.0
    per_second: Counter[int] = field(default_factory=Counter)
    # request event id -> (outcome record timestamp ms, wall time the outcome became visible,
    # the outcome's processing_ms: from the consumer's receipt to the outcome)
    by_request: dict[str, tuple[int, float, float]] = field(default_factory=dict)

    async def run(self, stop: asyncio.Event) -> None:
        """Every outcome, from the first, as soon as it is committed. The bench's CPU is the
        load generator's figure, so this reads with librdkafka (C), not aiokafka: 5.6 to
        6.2 µs an outcome against 7.3 to 9.3 (docs/bench.md). Its calls block, so they run
        in a thread of their own."""
        settings = self.settings
        consumer = KafkaReader(
            {
                **admin_config(settings),
                # Never joins or commits: the group id is only a name librdkafka requires.
                "group.id": f"{settings.consumer_group}-bench-reader",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        consumer.assign(
            [
                KafkaPartition(settings.topic_outcomes, partition, OFFSET_BEGINNING)
                for partition in range(settings.topic_partitions)
            ]
        )
        try:
            while not stop.is_set():
                seen, messages = await asyncio.to_thread(_next_messages, consumer)
                for message in messages:
                    # An error is librdkafka's news of the connection, not an outcome; an
                    # outcome it cost shows as one missing from the phase's count.
                    if message.error() is None:
                        self._take(message.timestamp()[1], message.value() or b"{}", seen)
        finally:
            await asyncio.to_thread(consumer.close)

    def _take(self, timestamp_ms: int, value: bytes, seen: float) -> None:
        body = orjson.loads(value)
        self.count += 1
        self.statuses[str(body.get("status"))] += 1
        processing_ms = float(body.get("processing_ms") or 0)
        self.first_receipt_ms = min(self.first_receipt_ms, timestamp_ms - processing_ms)
        self.last_timestamp_ms = max(self.last_timestamp_ms, timestamp_ms)
        self.last_seen = seen
        self.per_second[timestamp_ms // 1000] += 1
        request_id = body.get("request_event_id")
        if isinstance(request_id, str):
            self.by_request[request_id] = (timestamp_ms, seen, processing_ms)

    async def wait_for(self, count: int, within_s: float, alive: Callable[[], None]) -> None:
        deadline = time.monotonic() + within_s
        next_check = 0.0
        while self.count < count:
            now = time.monotonic()
            if now > deadline:
                raise TimeoutError(f"{self.count} of {count} outcomes after {within_s:.0f} s")
            if now >= next_check:
                alive()
                next_check = now + 1.0
            await asyncio.sleep(0.2)


def _next_messages(consumer: KafkaReader) -> tuple[float, list[KafkaMessage]]:
    """The messages there now and the moment they were: the first as soon as there is one
    (within 0.5 s), with whatever else had arrived by then. librdkafka's batch call waits
    for its whole count or its timeout, so alone it would hold the first outcome back."""
    first = consumer.poll(0.5)
    if first is None:
        return time.time(), []
    arrived = time.time()
    return arrived, [first, *consumer.consume(5000, 0)]


@dataclass(frozen=True)
class LagSample:
    seconds: float
    consumer_lag: int | None
    stream_lag: int | None
    stream_counted_lag: int | None
    outcomes: int
    # Outcomes in the evaluated window (the evaluator's gauge, set at each evaluation).
    window_outcomes: int | None = None


async def _http_body(host: str, port: int, path: str) -> str:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2)
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: bench\r\n\r\n".encode())
        await writer.drain()
        answer = (await asyncio.wait_for(reader.read(), 2)).decode("utf-8", "replace")
    finally:
        writer.close()
    return answer.partition("\r\n\r\n")[2]


async def metrics_text(host: str, port: int) -> str:
    return await _http_body(host, port, "/metrics")


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


@dataclass
class LagSampler:
    """Every `interval` s: the consumer group's lag on the requests, the stream group's lag on
    the outcomes (committed offsets against the last stable offsets), and the outcomes the
    stream has not yet counted by its own metrics."""

    settings: Settings
    follower: OutcomeReader
    stream_ports: Sequence[int]
    interval: float = 0.25
    samples: list[LagSample] = field(default_factory=list)

    @property
    def stream_group(self) -> str:
        return f"{self.settings.consumer_group}-rates"  # faust's app id, its group id

    async def run(self, stop: asyncio.Event) -> None:
        settings = self.settings
        admin = AIOKafkaAdminClient(**settings.kafka_client_options())
        ends = AIOKafkaConsumer(**settings.kafka_client_options(), isolation_level="read_committed")
        await admin.start()
        await ends.start()
        began = time.monotonic()
        try:
            # The run created both topics with `topic_partitions` partitions.
            count = settings.topic_partitions
            requests = [TopicPartition(settings.topic_requests, p) for p in range(count)]
            outcomes = [TopicPartition(settings.topic_outcomes, p) for p in range(count)]
            while not stop.is_set():
                consumer_lag = await self._lag(admin, ends, settings.consumer_group, requests)
                stream_lag = await self._lag(admin, ends, self.stream_group, outcomes)
                outcomes_seen = self.follower.count
                figures = await streams_figures(self.settings.http_host, self.stream_ports)
                counted_lag = window = None
                if figures is not None:
                    counted_lag = max(outcomes_seen - figures.counted, 0)
                    window = figures.window_outcomes
                self.samples.append(
                    LagSample(
                        round(time.monotonic() - began, 2),
                        consumer_lag,
                        stream_lag,
                        counted_lag,
                        outcomes_seen,
                        window,
                    )
                )
                await asyncio.sleep(self.interval)
        finally:
            await ends.stop()
            await admin.close()

    async def _lag(
        self,
        admin: AIOKafkaAdminClient,
        ends: AIOKafkaConsumer,
        group: str,
        partitions: list[TopicPartition],
    ) -> int | None:
        if not partitions:
            return None
        try:
            committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
            end = await ends.end_offsets(partitions)
        except Exception:  # a sample missed is a gap in the chart, not a failed run
            return None
        total = 0
        for tp in partitions:
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            total += max(end.get(tp, 0) - done, 0)
        return total


@dataclass(frozen=True)
class StreamFigures:
    counted: int  # outcome records read, by the workers' own counters
    window_outcomes: int  # outcomes in the evaluated window, by the evaluator


async def streams_figures(host: str, ports: Sequence[int]) -> StreamFigures | None:
    """The stream workers' counters summed and the evaluator's window; None while one of them
    does not answer (its count unknown, the sum would be short)."""
    counted, window = 0, 0
    for port in ports:
        if not port:
            return None
        try:
            text = await metrics_text(host, port)
        except (OSError, TimeoutError):
            return None
        counted += int(
            sum(
                _metric(text, f"store_publish_stream_{name}_total")
                for name in ("outcomes", "skipped_outcomes", "invalid_outcomes")
            )
        )
        # Only the evaluator sets it; the others keep 0.
        window = max(window, int(_metric(text, "store_publish_window_outcomes")))
    return StreamFigures(counted, window)


async def stream_counted(host: str, port: int) -> int | None:
    """Outcome records the stream has read, by its own counters; None when it does not answer."""
    figures = await streams_figures(host, [port])
    return None if figures is None else figures.counted


async def stream_group_settled(host: str, ports: Sequence[int]) -> bool:
    """Every worker holds partitions and exactly one evaluates (each one's /health)."""
    reports = []
    for port in ports:
        try:
            reports.append(json.loads(await _http_body(host, port, "/health")))
        except (OSError, TimeoutError, ValueError):
            return False
    held = all(isinstance(r, dict) and r.get("partitions") for r in reports)
    return held and sum(bool(r.get("evaluating")) for r in reports) == 1
