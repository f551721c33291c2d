"""Tracing: off unless the OTEL_* environment asks; the W3C context carried on Kafka headers;
a poll's request spans continuing their records' traces and their outcomes carrying them;
log lines naming the trace."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from aiokafka import ConsumerRecord
from aiokafka.structs import TopicPartition
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode, Tracer
from structlog.testing import capture_logs

from consumers.batch import BatchHandler
from consumers.commit import Committer, inbound, outbound
from consumers.results import Authenticated, Result, Results
from consumers.screening import Refusal
from consumers.tracing import PollTrace
from ops.oncall.replay import _replay_span
from ops.runtime.errors import UnknownExporter
from ops.runtime.logs import _add_trace_id
from ops.runtime.tracing import (
    context_headers,
    extract,
    link_to,
    provider_from_env,
    span_headers,
    tracing,
)
from schemas.events import Reason
from schemas.settings import Settings
from streams.tracing import traced_fetches
from tests.fixtures.tracing import Traces
from tests.helpers.decision_store import ScriptedStore, authenticated
from tests.helpers.fake_edges import FakeClaims, FakeKafka, FakeWriter, consumer_record

TOPIC = "requests"
TP = TopicPartition(TOPIC, 0)
PARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"OTEL_TRACES_EXPORTER": "none"},
        {"OTEL_TRACES_EXPORTER": " "},
        {"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"},
    ],
)
def test_tracing_is_off_unless_an_exporter_is_named(environ: dict[str, str]) -> None:
    assert provider_from_env("svc", environ) is None
    with tracing("svc", environ) as tracer:
        assert tracer is None


def test_an_exporter_named_turns_tracing_on_under_the_service_name() -> None:
    provider = provider_from_env("store-publish-consumer", {"OTEL_TRACES_EXPORTER": "otlp"})
    assert provider is not None
    try:
        assert provider.resource.attributes["service.name"] == "store-publish-consumer"
    finally:
        provider.shutdown()


def test_an_unknown_exporter_is_refused_by_name() -> None:
    with pytest.raises(UnknownExporter, match="OTEL_TRACES_EXPORTER=zipkin"):
        provider_from_env("svc", {"OTEL_TRACES_EXPORTER": "zipkin"})


def test_a_span_context_goes_through_kafka_headers_and_back(tracer: Tracer) -> None:
    with tracer.start_as_current_span("send") as span:
        headers = span_headers(span)
        assert context_headers() == headers  # the current span's, by default
    assert [name for name, _ in headers] == ["traceparent"]
    assert all(isinstance(value, bytes) for _, value in headers)
    carried = trace.get_current_span(extract(headers)).get_span_context()
    assert (carried.trace_id, carried.span_id) == (
        span.get_span_context().trace_id,
        span.get_span_context().span_id,
    )
    assert carried.is_remote


def test_tracestate_is_carried_with_traceparent() -> None:
    headers = [("traceparent", PARENT), ("tracestate", b"vendor=x")]
    assert context_headers(extract(headers)) == headers


@pytest.mark.parametrize(
    "headers",
    [[], [("traceparent", b"00-trace-01")], [("signature", b"sha256=ab")], [("traceparent", b"")]],
)
def test_no_valid_traceparent_links_nothing_and_extracts_no_parent(
    headers: list[tuple[str, bytes]],
) -> None:
    assert link_to(headers) is None
    assert not trace.get_current_span(extract(headers)).get_span_context().is_valid


def _record(offset: int, headers: list[tuple[str, bytes]]) -> ConsumerRecord[bytes, bytes]:
    return consumer_record(TP, offset, value=b"{", headers=headers)


def _refused(record: ConsumerRecord[bytes, bytes]) -> Result:
    refusal = Refusal(Reason.INVALID_PAYLOAD, "not JSON")
    return Results("dlq").refused(inbound(record, datetime.now(UTC)), refusal)


def _traceparent(headers: tuple[tuple[str, bytes], ...]) -> list[bytes]:
    return [value for name, value in headers if name == "traceparent"]


def test_with_tracing_off_outcomes_carry_no_trace_headers() -> None:
    result = _refused(_record(0, [("traceparent", PARENT)]))
    outcome, letter = outbound("outcomes", [result])
    assert outcome.headers == ()
    assert _traceparent(letter.headers) == [PARENT]  # the request's own, kept


def test_a_request_span_continues_its_record_and_its_outcome_carries_it(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    carried, bare = _record(0, [("traceparent", PARENT)]), _record(1, [])
    poll = PollTrace(tracer, {TP: [carried, bare]})
    results = {TP: [_refused(carried), _refused(bare)]}
    poll.decided(results, errors=0)
    records = outbound("outcomes", results[TP], poll)
    poll.committing()
    poll.committed(results, ok=True)
    finished = exporter.get_finished_spans()
    spans = {span.name: span for span in finished}
    assert set(spans) == {"decide", "commit", f"process {TOPIC}"}
    continued, started = [s for s in finished if s.name == f"process {TOPIC}"]
    assert continued.attributes is not None
    assert started.attributes is not None
    assert (
        continued.attributes["messaging.kafka.offset"],
        started.attributes["messaging.kafka.offset"],
    ) == (0, 1)
    assert continued.kind is SpanKind.CONSUMER
    assert continued.parent is not None
    assert continued.parent.span_id == 0x00F067AA0BA902B7
    assert started.parent is None
    assert continued.attributes["store_publish.status"] == "rejected"
    assert continued.attributes["store_publish.reason"] == "invalid_payload"
    assert continued.attributes["store_publish.attempts"] == 0
    for batch in ("decide", "commit"):
        assert {link.context.span_id for link in spans[batch].links} == {
            continued.context.span_id,
            started.context.span_id,
        }
    first_outcome, first_letter, second_outcome, second_letter = records
    assert _traceparent(first_outcome.headers) == [
        f"00-{continued.context.trace_id:032x}-{continued.context.span_id:016x}-01".encode()
    ]
    # A dead letter keeps the context the request came with; one that came without gets the
    # consumer's.
    assert _traceparent(first_letter.headers) == [PARENT]
    assert _traceparent(second_letter.headers) == _traceparent(second_outcome.headers)
    assert poll.trace_id(inbound(carried, datetime.now(UTC))) == PARENT.decode()[3:35]
    # The records the poll decides name their request's trace, for their log lines.
    assert inbound(carried, datetime.now(UTC), poll).trace_id == PARENT.decode()[3:35]
    assert inbound(carried, datetime.now(UTC)).trace_id is None


def test_a_poll_handed_back_ends_its_request_spans_as_handed_back_once(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    poll = PollTrace(tracer, {TP: [_record(0, [])]})
    poll.decided({}, errors=1)
    poll.handed_back()
    poll.handed_back()
    (request,) = [s for s in exporter.get_finished_spans() if s.name == f"process {TOPIC}"]
    assert request.status.status_code is StatusCode.ERROR
    assert request.status.description == "handed back to Kafka"
    assert len(exporter.get_finished_spans()) == 2  # the request and decide, each once


def test_log_lines_carry_the_current_trace_id_and_none_without_a_span(tracer: Tracer) -> None:
    assert _add_trace_id(None, "info", {"message": "m"}) == {"message": "m"}
    with tracer.start_as_current_span("request") as span:
        line = _add_trace_id(None, "info", {"message": "m"})
        own = _add_trace_id(None, "info", {"message": "m", "traceId": "given"})
    assert line["traceId"] == f"{span.get_span_context().trace_id:032x}"
    assert own["traceId"] == "given"


def test_the_stream_makes_one_span_per_fetch_linking_its_outcomes_traces(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    folded: list[int] = []
    handle = traced_fetches(
        tracer, "outcomes", lambda _partition, records: folded.append(len(records))
    )
    records = [_record(0, [("traceparent", PARENT)]), _record(1, []), _record(2, [])]
    handle(3, records)
    (span,) = exporter.get_finished_spans()
    assert folded == [3]
    assert span.name == "process outcomes"
    assert span.attributes is not None
    assert span.attributes["messaging.batch.message_count"] == 3
    assert [f"{link.context.trace_id:032x}" for link in span.links] == [PARENT.decode()[3:35]]


def test_a_replayed_record_goes_back_in_its_own_trace_linked_to_the_replay(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    original = [("signature", b"sha256=ab"), ("traceparent", PARENT), ("replay.count", b"1")]
    with (
        tracer.start_as_current_span("dlq replay") as run,
        _replay_span(tracer, run, "requests", original) as headers,
    ):
        pass
    with _replay_span(None, None, "requests", original) as untouched:
        assert untouched == original
    send = next(s for s in exporter.get_finished_spans() if s.name == "send requests")
    assert send.parent is not None
    assert send.parent.span_id == 0x00F067AA0BA902B7
    assert [link.context.span_id for link in send.links] == [run.get_span_context().span_id]
    assert [name for name, _ in headers] == ["signature", "replay.count", "traceparent"]
    assert _traceparent(tuple(headers)) == [
        f"00-{PARENT.decode()[3:35]}-{send.context.span_id:016x}-01".encode()
    ]


LOCK_TIMEOUT = asyncpg.exceptions.LockNotAvailableError


def _request_record(
    item: Authenticated, headers: list[tuple[str, bytes]]
) -> ConsumerRecord[bytes, bytes]:
    record = item.record
    return consumer_record(
        TopicPartition(record.topic, record.partition),
        record.offset,
        key=record.key,
        value=record.value,
        headers=headers,
        timestamp_ms=record.timestamp_ms,
    )


async def _decide_with_a_stuck_store(
    tracer: Tracer | None, failures: list[BaseException]
) -> tuple[list[Authenticated], list[dict[str, Any]]]:
    """A poll of two requests, one traced by its caller, through the real committer, batch
    handler and retry flow; the second request's store fails `failures` first. Its log lines."""
    items = [authenticated(0), authenticated(1)]
    store = ScriptedStore()
    store.fail[items[1].request.store_id] = failures
    settings = Settings(
        _env_file=None,
        topic_outcomes="outcomes",
        topic_dlq="dlq",
        retry_max_attempts=3,
        retry_initial_delay_ms=1,
        retry_max_delay_ms=4,
    )
    committer = Committer(
        settings,
        FakeKafka(0),
        FakeClaims(FakeWriter()),
        BatchHandler(settings, store),
        tracer,
    )
    records = [_request_record(items[0], [("traceparent", PARENT)]), _request_record(items[1], [])]
    with capture_logs() as logs:
        poll = await committer.decide({TP: records})
        committed = await committer.commit(poll)
    assert committed.ok
    assert [r.outcome.status.value for r in poll.results[TP]] == ["published", "published"]
    return items, logs


@pytest.mark.parametrize(
    ("failures", "retries"),
    [
        # One request's store stuck: the batch fails, each request is retried alone, the
        # stuck one twice.
        ([LOCK_TIMEOUT("lock timeout")] * 2, [(2, "corr-0"), (2, "corr-1"), (3, "corr-1")]),
        # The connection lost: the whole batch again, its line naming its first request.
        ([ConnectionRefusedError(111, "refused")], [(2, "corr-0")]),
    ],
)
async def test_retry_lines_carry_the_trace_id_of_their_request(
    traces: Traces, failures: list[BaseException], retries: list[tuple[int, str]]
) -> None:
    _, logs = await _decide_with_a_stuck_store(traces.tracer, failures)
    retried = [line for line in logs if line["event"] == "Retry attempt"]
    assert [(line["attempt"], line["correlationId"]) for line in retried] == retries
    requests = traces.named(f"process {TOPIC}")
    trace_of = {
        span.attributes["store_publish.correlation_id"]: format(span.context.trace_id, "032x")
        for span in requests
        if span.attributes is not None
    }
    # The caller's trace for the request that came with one, a trace of its own for the other.
    assert trace_of["corr-0"] == PARENT.decode()[3:35]
    assert len(set(trace_of.values())) == 2
    for line in retried:
        assert line["traceId"] == trace_of[line["correlationId"]]
    for line in logs:
        if line["event"] == "Batch transaction failed, retrying its requests one by one":
            assert (line["correlationId"], line["traceId"]) == ("corr-0", trace_of["corr-0"])


async def test_with_tracing_off_retry_lines_carry_no_trace_id() -> None:
    _, logs = await _decide_with_a_stuck_store(None, [LOCK_TIMEOUT("lock timeout")] * 2)
    retried = [line for line in logs if line["event"] == "Retry attempt"]
    assert len(retried) == 3
    assert all("correlationId" in line for line in logs if "attempt" in line)
    assert not [line for line in logs if "traceId" in line]
