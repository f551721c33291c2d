"""The rates stream's spans, made only when tracing is on: one per fetch of a partition's
outcomes, never one per outcome, linking the traces of the first outcomes it folds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, cast

from opentelemetry.trace import SpanKind, Tracer

from ops.runtime.tracing import KafkaHeaders, link_to
from streams.faust_app.fetching import FetchedRecord, FetchHandler

# The SDK keeps 128 links a span by default (OTEL_SPAN_LINK_COUNT_LIMIT); more would be
# read from their headers only to be dropped.
MAX_LINKS = 128


class _WithHeaders(Protocol):
    headers: KafkaHeaders


def traced_fetches(tracer: Tracer, topic: str, handler: FetchHandler) -> FetchHandler:
    """`handler` inside a span per fetch (aiokafka's records carry their headers)."""

    def handle(partition: int, records: Sequence[FetchedRecord]) -> None:
        links = [
            link
            for record in records[:MAX_LINKS]
            if (link := link_to(cast(_WithHeaders, record).headers)) is not None
        ]
        with tracer.start_as_current_span(
            f"process {topic}",
            kind=SpanKind.CONSUMER,
            links=links,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.destination.name": topic,
                "messaging.destination.partition.id": str(partition),
                "messaging.batch.message_count": len(records),
            },
        ):
            handler(partition, records)

    return handle
