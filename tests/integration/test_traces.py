"""Traces through the real gateway, broker, consumer, database and rates stream: one request
is one connected trace, from the caller's `traceparent` through the gateway's span, the
send, the consumer's request span (under its decide and commit spans' links) to the
outcome's `traceparent`; a dead letter keeps the context the request came with; the stream
makes a span per fetch of outcomes, not per outcome, linking the outcomes' traces."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, Tracer

from consumers.app import run_consumer
from ops.gateway.app import run_gateway
from ops.oncall.topic_reader import RawRecord
from ops.runtime.topics import ensure_topics
from schemas.settings import Settings
from streams.app import run_stream
from tests.fixtures.creators import MakeCreators
from tests.fixtures.gateway import MintToken
from tests.fixtures.settings import MakeSettings
from tests.fixtures.tracing import Traces
from tests.helpers.openapi_check import checked_session
from tests.helpers.stream import fast, outcome
from tests.helpers.support import producer_for, read_topic, running

ROUTE = "/api/store/publish"
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


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


def request_spans(
    found: Sequence[ReadableSpan], settings: Settings
) -> tuple[ReadableSpan, ReadableSpan, ReadableSpan]:
    """One request's own spans: the gateway's POST, its send, the consumer's process."""
    (post,) = named(found, f"POST {ROUTE}")
    (send,) = named(found, f"send {settings.topic_requests}")
    (process,) = named(found, f"process {settings.topic_requests}")
    return post, send, process


def named(found: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [span for span in found if span.name == name]


def traced_by(record: RawRecord) -> tuple[str, str]:
    """The trace id and parent span id of the record's one `traceparent` (its flags vary:
    the SDK marks its random trace ids)."""
    (value,) = [value for name, value in record.headers if name == "traceparent"]
    version, trace_id, span_id, _flags = value.decode("ascii").split("-")
    assert version == "00"
    return trace_id, span_id


PostTraced = Callable[[dict[str, object], dict[str, str]], Awaitable[tuple[Settings, int]]]


@pytest.fixture
def post_traced(
    make_gateway_settings: Callable[..., Settings],
    make_creators: MakeCreators,
    mint_token: MintToken,
    traces: Traces,
) -> PostTraced:
    """POST `body` with `headers` (and a creator's token) through the traced gateway and
    consumer, on topics of its own; its settings and the answer's status, once the
    consumer's request span has ended."""

    async def post(body: dict[str, object], headers: dict[str, str]) -> tuple[Settings, int]:
        settings = make_gateway_settings()
        await ensure_topics(settings)
        (creator,) = await make_creators(1)
        process_name = f"process {settings.topic_requests}"
        sent = {"Authorization": f"Bearer {mint_token(creator.user_id)}", **headers}
        async with (
            traced_pipeline(settings, traces.tracer) as url,
            checked_session() as http,
        ):
            async with http.post(url + ROUTE, json=body, headers=sent) as got:
                status = got.status
            await traces.until(lambda found: bool(named(found, process_name)))
        return settings, status

    return post


async def test_one_request_is_one_connected_trace_from_the_gateway_to_the_outcome(
    post_traced: PostTraced, traces: Traces
) -> None:
    caller = {"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"}
    settings, status = await post_traced({"confirmPublish": True}, caller)
    assert status == 200
    found = traces.finished()
    post, send, process = request_spans(found, settings)
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
    (answer,) = await read_topic(settings, settings.topic_outcomes, expect=1)
    span_id = hex_id(process.context.span_id, 16)
    assert traced_by(answer) == (CALLER_TRACE, span_id)
    # The trace as a person reads it (`pytest -s`): each span, its parent, its duration.
    names = {span.context.span_id: span.name for span in found}
    for span in sorted(found, key=lambda span: span.start_time or 0):
        parent = names.get(span.parent.span_id, "(caller)") if span.parent else "(root)"
        took = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
        print(f"trace: {span.name:<40} under {parent:<40} {took:8.2f} ms")


async def test_a_dead_letter_keeps_the_context_its_request_came_with(
    post_traced: PostTraced, traces: Traces
) -> None:
    settings, status = await post_traced({"confirmPublish": False}, {})
    assert status == 400
    found = traces.finished()
    post, send, process = request_spans(found, settings)
    assert post.parent is None  # no caller context: the gateway started the trace
    trace_id = hex_id(post.context.trace_id, 32)
    assert {hex_id(span.context.trace_id, 32) for span in (send, process)} == {trace_id}
    assert process.attributes is not None
    assert process.attributes["store_publish.status"] == "rejected"
    assert process.attributes["store_publish.reason"] == "not_confirmed"
    (letter,) = await read_topic(settings, settings.topic_dlq, expect=1)
    assert traced_by(letter) == (trace_id, hex_id(send.context.span_id, 16))
    (answer,) = await read_topic(settings, settings.topic_outcomes, expect=1)
    assert traced_by(answer) == (trace_id, hex_id(process.context.span_id, 16))


async def test_the_stream_makes_a_span_per_fetch_linking_the_traces_of_its_outcomes(
    make_settings: MakeSettings, traces: Traces
) -> None:
    settings = fast(make_settings)
    await ensure_topics(settings)
    count = 60
    # Each outcome in a trace of its own, as the consumer sends them.
    sent = {secrets.token_hex(16): outcome() for _ in range(count)}
    fetch_name = f"process {settings.topic_outcomes}"

    def folded(found: Sequence[ReadableSpan]) -> int:
        return sum(_message_count(span) for span in named(found, fetch_name))

    async with (
        running(
            lambda stop, started: run_stream(
                settings, stop=stop, started=started, tracer=traces.tracer
            )
        ),
        producer_for(settings) as producer,
    ):
        for trace_id, item in sent.items():
            await producer.send(
                settings.topic_outcomes,
                key=str(item.store_id).encode(),
                value=item.model_dump_json().encode(),
                headers=[("traceparent", f"00-{trace_id}-{secrets.token_hex(8)}-01".encode())],
            )
        await producer.flush()
        found = await traces.until(lambda found: folded(found) >= count, wait_s=30)
    fetches = named(found, fetch_name)
    # Every outcome folded once, in fewer spans than outcomes: one per fetch of a partition.
    assert folded(found) == count
    assert len(fetches) < count
    for span in fetches:
        assert span.kind is SpanKind.CONSUMER
        assert span.attributes is not None
        assert span.attributes["messaging.destination.name"] == settings.topic_outcomes
        # Under the SDK's 128 links, a fetch links every outcome it folded.
        assert len(span.links) == _message_count(span)
    linked = [hex_id(link.context.trace_id, 32) for span in fetches for link in span.links]
    assert sorted(linked) == sorted(sent)


def _message_count(span: ReadableSpan) -> int:
    count = span.attributes.get("messaging.batch.message_count") if span.attributes else None
    assert isinstance(count, int)
    return count
