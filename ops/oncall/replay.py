"""Replaying dead letters: which records go back, sending them, and the history of replays.

The decision (`plan_replay`) is pure. A record goes back to the requests topic with its key,
value and original headers, and `replay.count` raised by one. Nothing loops: a request that
keeps failing comes back with a higher count each time and, past `DLQ_MAX_REPLAYS`, is
parked. Only the most recent dead letter of a request is replayed: Kafka keeps the earlier
copies, and replaying those would re-send a request with a count that was already used.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from opentelemetry.trace import Link, Span, SpanKind, Tracer

from ops.errors import OperatorError, unreachable_kafka
from ops.oncall.dead_letters import DeadLetter, Filters, latest_by_request
from ops.probes import KAFKA_TIMEOUT_MS, with_kafka_deadline
from ops.runtime.tracing import TRACE_HEADERS, extract, span_headers
from schemas.dead_letter import REPLAY_COUNT_HEADER, original_headers
from schemas.events import Reason
from schemas.settings import Settings

# Replaying these cannot succeed: the same bytes fail the same way.
UNREPLAYABLE = frozenset({Reason.BAD_SIGNATURE, Reason.INVALID_PAYLOAD, Reason.TOO_LARGE})
# How many sends are in flight before waiting for the broker's acknowledgements.
_IN_FLIGHT = 200


class ReplayVerdict(StrEnum):
    SEND = "send"
    REFUSED = "refused"  # a reason that cannot succeed on replay (or no reason at all)
    PARKED = "parked"  # replayed DLQ_MAX_REPLAYS times already
    SUPERSEDED = "superseded"  # a later dead letter of the same request exists


def verdict(
    record: DeadLetter, *, latest: DeadLetter | None, max_replays: int, force: bool
) -> ReplayVerdict:
    """What a replay does with `record`; `force` overrides refusals and parking, not copies."""
    if latest is not None and latest.position != record.position:
        return ReplayVerdict.SUPERSEDED
    if not force and (record.reason is None or record.reason in UNREPLAYABLE):
        return ReplayVerdict.REFUSED
    if not force and record.replay_count >= max_replays:
        return ReplayVerdict.PARKED
    return ReplayVerdict.SEND


@dataclass(frozen=True)
class ReplayPlan:
    selected: tuple[tuple[DeadLetter, ReplayVerdict], ...]
    forced: bool

    def having(self, wanted: ReplayVerdict) -> list[DeadLetter]:
        return [record for record, found in self.selected if found is wanted]

    def count(self, wanted: ReplayVerdict) -> int:
        return sum(1 for _record, found in self.selected if found is wanted)


def plan_replay(
    selected: Sequence[DeadLetter],
    everything: Sequence[DeadLetter],
    *,
    max_replays: int,
    force: bool,
) -> ReplayPlan:
    """Judge each selected record against the whole topic (for later copies of a request)."""
    latest = latest_by_request(everything)
    return ReplayPlan(
        tuple(
            (
                record,
                verdict(
                    record,
                    latest=latest.get(record.request_identity),
                    max_replays=max_replays,
                    force=force,
                ),
            )
            for record in selected
        ),
        forced=force,
    )


def replay_headers(record: DeadLetter) -> list[tuple[str, bytes]]:
    """The headers the request arrived with, and `replay.count` one higher than before."""
    return [
        *original_headers(list(record.headers)),
        (REPLAY_COUNT_HEADER, str(record.replay_count + 1).encode("ascii")),
    ]


@contextmanager
def _replay_span(
    tracer: Tracer | None, run: Span | None, topic: str, headers: list[tuple[str, bytes]]
) -> Iterator[list[tuple[str, bytes]]]:
    """The headers a replayed record is sent with. Traced, its send is a span in the trace
    the dead letter carries (the request's own), linked to the replay's span; the record
    carries that span's context in place of the one it came with."""
    if tracer is None or run is None:
        yield headers
        return
    with tracer.start_as_current_span(
        f"send {topic}",
        context=extract(headers),
        kind=SpanKind.PRODUCER,
        links=[Link(run.get_span_context())],
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "messaging.destination.name": topic,
            "store_publish.replay": True,
        },
    ) as span:
        kept = [(name, value) for name, value in headers if name not in TRACE_HEADERS]
        yield [*kept, *span_headers(span)]


@dataclass(frozen=True)
class SendResult:
    sent: int
    error: OperatorError | None  # set when the broker failed part-way


async def send_replays(
    settings: Settings,
    records: Sequence[DeadLetter],
    *,
    rate: float | None = None,
    on_sent: Callable[[int], None] = lambda _done: None,
    tracer: Tracer | None = None,
) -> SendResult:
    """Re-send `records` to the requests topic, at most `rate` per second; count acknowledged.
    With a `tracer`, the replay is a span and each record's send a span linked to it, in the
    trace the record already belongs to (`_replay_span`)."""
    producer = AIOKafkaProducer(
        **settings.kafka_client_options(),
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=KAFKA_TIMEOUT_MS,
    )
    run_span = (
        tracer.start_as_current_span(
            "dlq replay", attributes={"store_publish.replayed": len(records)}
        )
        if tracer is not None
        else nullcontext(None)
    )
    with run_span as run:
        return await _send_all(settings, producer, records, rate, on_sent, tracer, run)


async def _send_all(
    settings: Settings,
    producer: AIOKafkaProducer,
    records: Sequence[DeadLetter],
    rate: float | None,
    on_sent: Callable[[int], None],
    tracer: Tracer | None,
    run: Span | None,
) -> SendResult:
    servers = settings.kafka_bootstrap_servers
    topic = settings.topic_requests
    sent = 0
    try:
        await with_kafka_deadline(servers, producer.start())
        loop = asyncio.get_running_loop()
        started = loop.time()
        pending: list[asyncio.Future[object]] = []
        for index, record in enumerate(records):
            if rate:
                delay = started + index / rate - loop.time()
                if delay > 0:
                    sent += await _acknowledged(servers, pending, on_sent, sent)
                    await asyncio.sleep(delay)
            with _replay_span(tracer, run, topic, replay_headers(record)) as headers:
                pending.append(
                    await producer.send(topic, value=record.value, key=record.key, headers=headers)
                )
            if len(pending) >= _IN_FLIGHT:
                sent += await _acknowledged(servers, pending, on_sent, sent)
        sent += await _acknowledged(servers, pending, on_sent, sent)
        return SendResult(sent, None)
    except OperatorError as error:
        return SendResult(sent, error)
    except KafkaError as error:
        return SendResult(sent, unreachable_kafka(servers, error))
    finally:
        await producer.stop()


async def _acknowledged(
    servers: str,
    pending: list[asyncio.Future[object]],
    on_sent: Callable[[int], None],
    already: int,
) -> int:
    if not pending:
        return 0
    await with_kafka_deadline(servers, asyncio.gather(*pending))
    done = len(pending)
    pending.clear()
    on_sent(already + done)
    return done


@dataclass(frozen=True)
class ReplayRecord:
    """One row of `dlq_replays`."""

    id: int
    replayed_at: datetime
    operator: str
    filters: str
    dry_run: bool
    forced: bool
    selected: int
    sent: int
    refused: int
    parked: int


_COLUMNS = (
    "id, replayed_at, operator, filters::text, dry_run, forced, selected, sent, refused, parked"
)


def _row(row: asyncpg.Record) -> ReplayRecord:
    return ReplayRecord(
        id=row["id"],
        replayed_at=row["replayed_at"],
        operator=row["operator"],
        filters=row["filters"],
        dry_run=row["dry_run"],
        forced=row["forced"],
        selected=row["selected"],
        sent=row["sent"],
        refused=row["refused"],
        parked=row["parked"],
    )


async def record_replay(
    conn: asyncpg.Connection,
    *,
    operator: str,
    filters: Filters,
    plan: ReplayPlan,
    dry_run: bool,
    sent: int,
) -> ReplayRecord:
    """Write the replay (or dry run) to `dlq_replays`; superseded copies count as selected."""
    row = await conn.fetchrow(
        f"""INSERT INTO dlq_replays
                (operator, filters, dry_run, forced, selected, sent, refused, parked)
            VALUES ($1, $2::jsonb, $3, $4, $5, $6, $7, $8)
            RETURNING {_COLUMNS}""",
        operator,
        filters.to_json(),
        dry_run,
        plan.forced,
        len(plan.selected),
        sent,
        plan.count(ReplayVerdict.REFUSED),
        plan.count(ReplayVerdict.PARKED),
    )
    assert row is not None  # INSERT ... RETURNING always returns the row
    return _row(row)


async def replay_history(conn: asyncpg.Connection, *, limit: int = 20) -> list[ReplayRecord]:
    """The most recent replays first."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM dlq_replays ORDER BY replayed_at DESC, id DESC LIMIT $1", limit
    )
    return [_row(row) for row in rows]
