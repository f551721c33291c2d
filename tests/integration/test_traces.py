"""Traces through the real gateway, broker, consumer and database: one request is one
connected trace, from the caller's `traceparent` through the gateway's span, the send, the
consumer's request span (under its decide and commit spans' links) to the outcome's
`traceparent`; a dead letter keeps the context the request came with."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Tracer

from consumers.app import run_consumer
from ops.gateway.app import run_gateway
from ops.oncall.topic_reader import RawRecord
from ops.runtime.topics import ensure_topics
from schemas.settings import Settings
from tests.fixtures.creators import MakeCreators
from tests.fixtures.gateway import MintToken
from tests.helpers.openapi_check import checked_session
from tests.helpers.support import read_topic, running

ROUTE = "/api/store/publish"
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def spans() -> tuple[Tracer, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test"), exporter


@asynccontextmanager
async def traced_pipeline(settings: Settings, tracer: Tracer) -> AsyncIterator[str]:
    """The consumer and the gateway in this process, both with `tracer`; the gateway's URL."""
    bound: list[int] = []
    async with (
        running(
            lambda stop, started: run_consumer(settings, stop=stop, started=started, tracer=tracer)
        ),
        running(
            lambda stop, started: run_gateway(
                settings, stop=stop, started=started, bound=bound, tracer=tracer
            )
        ),
    ):
        yield f"http://{settings.http_host}:{bound[0]}"


def hex_id(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def named(found: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [span for span in found if span.name == name]


async def until_spans(
    exporter: InMemorySpanExporter, done: Callable[[Sequence[ReadableSpan]], bool]
) -> Sequence[ReadableSpan]:
    """The finished spans once `done` says they are all there (the consumer ends a request's
    span just after its Kafka commit, as the gateway may already be answering)."""
    for _ in range(100):
        found = exporter.get_finished_spans()
        if done(found):
            return found
        await asyncio.sleep(0.05)
    return exporter.get_finished_spans()


def traced_by(record: RawRecord) -> tuple[str, str]:
    """The trace id and parent span id of the record's one `traceparent` (its flags vary:
    the SDK marks its random trace ids)."""
    (value,) = [value for name, value in record.headers if name == "traceparent"]
    version, trace_id, span_id, _flags = value.decode("ascii").split("-")
    assert version == "00"
    return trace_id, span_id


async def test_one_request_is_one_connected_trace_from_the_gateway_to_the_outcome(
    make_gateway_settings: Callable[..., Settings],
    make_creators: MakeCreators,
    mint_token: MintToken,
    spans: tuple[Tracer, InMemorySpanExporter],
) -> None:
    tracer, exporter = spans
    settings = make_gateway_settings()
    await ensure_topics(settings)
    (creator,) = await make_creators(1)
    async with traced_pipeline(settings, tracer) as url, checked_session() as http:
        headers = {
            "Authorization": f"Bearer {mint_token(creator.user_id)}",
            "traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01",
        }
        async with http.post(url + ROUTE, json={"confirmPublish": True}, headers=headers) as got:
            assert got.status == 200
        process_name = f"process {settings.topic_requests}"
        found = await until_spans(exporter, lambda s: bool(named(s, process_name)))
    (post,) = named(found, f"POST {ROUTE}")
    (send,) = named(found, f"send {settings.topic_requests}")
    (process,) = named(found, process_name)
    decide, commit = named(found, "decide"), named(found, "commit")
    # One trace, continued from the caller: POST -> send -> the consumer's request span.
    for span in (post, send, process):
        assert hex_id(span.context.trace_id, 32) == CALLER_TRACE
    assert post.kind is SpanKind.SERVER
    assert post.parent is not None
    assert hex_id(post.parent.span_id, 16) == CALLER_SPAN
    assert post.attributes is not None
    assert post.attributes["http.response.status_code"] == 200
    assert [event.name for event in post.events] == ["outcome received"]
    assert send.kind is SpanKind.PRODUCER
    assert send.parent is not None
    assert send.parent.span_id == post.context.span_id
    assert process.kind is SpanKind.CONSUMER
    assert process.parent is not None
    assert process.parent.span_id == send.context.span_id
    assert process.attributes is not None
    assert process.attributes["store_publish.status"] == "published"
    assert process.attributes["store_publish.reason"] == ""
    assert process.attributes["store_publish.attempts"] == 1
    # The poll's decide and commit spans link the request they carried.
    for batch in (decide, commit):
        linked = [link.context.span_id for span in batch for link in span.links]
        assert process.context.span_id in linked
    # The outcome carries the request span's context: analytics and the stream continue it.
    (outcome,) = await read_topic(settings, settings.topic_outcomes, expect=1)
    span_id = hex_id(process.context.span_id, 16)
    assert traced_by(outcome) == (CALLER_TRACE, span_id)


async def test_a_dead_letter_keeps_the_context_its_request_came_with(
    make_gateway_settings: Callable[..., Settings],
    make_creators: MakeCreators,
    mint_token: MintToken,
    spans: tuple[Tracer, InMemorySpanExporter],
) -> None:
    tracer, exporter = spans
    settings = make_gateway_settings()
    await ensure_topics(settings)
    (creator,) = await make_creators(1)
    async with traced_pipeline(settings, tracer) as url, checked_session() as http:
        headers = {"Authorization": f"Bearer {mint_token(creator.user_id)}"}
        async with http.post(url + ROUTE, json={"confirmPublish": False}, headers=headers) as got:
            assert got.status == 400
        process_name = f"process {settings.topic_requests}"
        found = await until_spans(exporter, lambda s: bool(named(s, process_name)))
    (post,) = named(found, f"POST {ROUTE}")
    (send,) = named(found, f"send {settings.topic_requests}")
    (process,) = named(found, process_name)
    assert post.parent is None  # no caller context: the gateway started the trace
    trace_id = hex_id(post.context.trace_id, 32)
    assert {hex_id(span.context.trace_id, 32) for span in (send, process)} == {trace_id}
    assert process.attributes is not None
    assert process.attributes["store_publish.status"] == "rejected"
    assert process.attributes["store_publish.reason"] == "not_confirmed"
    (letter,) = await read_topic(settings, settings.topic_dlq, expect=1)
    assert traced_by(letter) == (trace_id, hex_id(send.context.span_id, 16))
    (outcome,) = await read_topic(settings, settings.topic_outcomes, expect=1)
    assert traced_by(outcome) == (trace_id, hex_id(process.context.span_id, 16))
