"""A poll's spans, made only when tracing is on (docs/tracing.md).

Each request gets a span continuing the trace its record carries (`traceparent`), or
starting one: from the moment the poll is decided until its Kafka transaction commits or it
is handed back, with the outcome's status, reason and attempts. The poll gets a `decide`
span (the database transactions) and a `commit` span (the Kafka transaction), each linking
the requests it carries. The outcome carries the request span's context; a dead letter
keeps the request's own headers, and gets the request span's context only when the request
came without one.

aiokafka's instrumentation would not do here: it keeps no context active while a record is
processed, and the consumer processes a poll's records together.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from aiokafka import ConsumerRecord
from aiokafka.structs import TopicPartition
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, Tracer

from consumers.outcomes import InboundRecord
from consumers.results import Result
from ops.runtime.tracing import extract, span_headers, trace_id_of

Position = tuple[str, int, int]

_HANDED_BACK = "handed back to Kafka"


def _position(record: ConsumerRecord[bytes, bytes] | InboundRecord) -> Position:
    return (record.topic, record.partition, record.offset)


class PollTrace:
    """The spans of one poll, from `decide` to its commit or its hand-back."""

    def __init__(
        self,
        tracer: Tracer,
        batches: Mapping[TopicPartition, Sequence[ConsumerRecord[bytes, bytes]]],
    ) -> None:
        self._tracer = tracer
        began = time.time_ns()
        self._requests: dict[Position, Span] = {}
        for records in batches.values():
            for record in records:
                self._requests[_position(record)] = tracer.start_span(
                    f"process {record.topic}",
                    context=extract(record.headers),
                    kind=SpanKind.CONSUMER,
                    start_time=began,
                    attributes={
                        "messaging.system": "kafka",
                        "messaging.operation.type": "process",
                        "messaging.destination.name": record.topic,
                        "messaging.destination.partition.id": str(record.partition),
                        "messaging.kafka.offset": record.offset,
                    },
                )
        self._links = [Link(span.get_span_context()) for span in self._requests.values()]
        self._decide = tracer.start_span(
            "decide",
            start_time=began,
            links=self._links,
            attributes={"messaging.batch.message_count": len(self._requests)},
        )
        self._commit: Span | None = None
        self._open = True

    def decided(self, results: Mapping[TopicPartition, Sequence[Result]], errors: int) -> None:
        """Each request's answer on its span; the decide span ends."""
        for decided in results.values():
            for result in decided:
                span = self._requests.get(_position(result.record))
                if span is None:
                    continue
                outcome = result.outcome
                span.set_attributes(
                    {
                        "store_publish.status": outcome.status.value,
                        "store_publish.reason": outcome.reason.value if outcome.reason else "",
                        "store_publish.attempts": outcome.attempts,
                        "store_publish.correlation_id": outcome.correlation_id,
                        "store_publish.repeated": result.repeated,
                    }
                )
        if errors:
            self._decide.set_status(Status(StatusCode.ERROR, f"{errors} batch(es) handed back"))
        self._decide.end()

    def headers_for(self, record: InboundRecord) -> tuple[tuple[str, bytes], ...]:
        """The request span's context, for the records its outcome and dead letter become."""
        span = self._requests.get(_position(record))
        return tuple(span_headers(span)) if span is not None else ()

    def trace_id(self, record: ConsumerRecord[bytes, bytes] | InboundRecord) -> str | None:
        """The trace of the record's request span (None when the record is not this poll's)."""
        span = self._requests.get(_position(record))
        return trace_id_of(span) if span is not None else None

    def committing(self) -> None:
        self._commit = self._tracer.start_span(
            "commit",
            links=self._links,
            attributes={"messaging.batch.message_count": len(self._requests)},
        )

    def committed(self, results: Mapping[TopicPartition, Sequence[Result]], ok: bool) -> None:
        """The commit span ends; the requests it committed end with it, the rest (not decided
        here, or the transaction failed) as handed back."""
        if self._commit is not None:
            if not ok:
                self._commit.set_status(Status(StatusCode.ERROR, _HANDED_BACK))
            self._commit.end()
            self._commit = None
        if ok:
            for decided in results.values():
                for result in decided:
                    span = self._requests.get(_position(result.record))
                    if span is not None:
                        span.end()
        self.handed_back()

    def handed_back(self) -> None:
        """Every request span still open ends as handed back: its record is read again and
        gets a span of its own then. Idempotent."""
        if not self._open:
            return
        self._open = False
        if self._decide.is_recording():
            self._decide.end()
        for span in self._requests.values():
            if span.is_recording():
                span.set_status(Status(StatusCode.ERROR, _HANDED_BACK))
                span.end()
        if self._commit is not None:
            self._commit.end()
