"""Traces: turned on from the standard `OTEL_*` environment at a command's entry, off by
default; and the W3C trace context on Kafka records' headers.

Off (no `OTEL_TRACES_EXPORTER`, or `none`, or `OTEL_SDK_DISABLED=true`), a process gets no
tracer at all (`None`) and every caller skips its spans, links and headers: the hot path
pays one `is None` a poll. On, a `TracerProvider` of the SDK exports through a batch
processor: `otlp` (OTLP over HTTP/protobuf, `OTEL_EXPORTER_OTLP_ENDPOINT`,
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_HEADERS`... read by the exporter
itself) or `console`. `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` name the process;
the sampler and limits are the SDK's own `OTEL_TRACES_SAMPLER`, `OTEL_SPAN_LINK_COUNT_LIMIT`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.trace import Link, Span, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ops.runtime.errors import UnknownExporter

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
TRACE_HEADERS = frozenset({TRACEPARENT, TRACESTATE})
INSTRUMENTATION = "store-publish"

# The contract names W3C trace context, whatever OTEL_PROPAGATORS says.
_W3C = TraceContextTextMapPropagator()

KafkaHeaders = Sequence[tuple[str, bytes]]


def _exporter(name: str) -> SpanExporter:
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    if name == "otlp":
        # Imported only when asked for: it pulls in protobuf and requests.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if name == "console":
        return ConsoleSpanExporter()
    raise UnknownExporter(f"OTEL_TRACES_EXPORTER={name}: expected otlp, console or none")


def provider_from_env(service: str, environ: Mapping[str, str]) -> TracerProvider | None:
    """The SDK provider the environment asks for, or None when tracing is off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    names = [n.strip() for n in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    names = [n for n in names if n != "none"]
    if not names:
        return None
    # The SDK is imported only when tracing is on: every command imports this module, and
    # the SDK takes 30 ms to import.
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # Resource.create adds OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME over this default.
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
    for name in names:
        provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
    return provider


@contextmanager
def tracing(service: str, environ: Mapping[str, str]) -> Iterator[Tracer | None]:
    """A command's tracer for its whole run (None when off); its spans flushed at the end."""
    provider = provider_from_env(service, environ)
    if provider is None:
        yield None
        return
    try:
        yield provider.get_tracer(INSTRUMENTATION)
    finally:
        provider.shutdown()


class _HeaderGetter(Getter[KafkaHeaders]):
    def get(self, carrier: KafkaHeaders, key: str) -> list[str] | None:
        found = [v.decode("latin-1") for name, v in carrier if name == key]
        return found or None

    def keys(self, carrier: KafkaHeaders) -> list[str]:
        return [name for name, _ in carrier]


class _HeaderSetter(Setter[list[tuple[str, bytes]]]):
    def set(self, carrier: list[tuple[str, bytes]], key: str, value: str) -> None:
        carrier.append((key, value.encode("ascii")))


_GETTER = _HeaderGetter()
_SETTER = _HeaderSetter()


def extract(headers: KafkaHeaders) -> Context:
    """The trace context a record's headers carry (an empty context when none or invalid)."""
    return _W3C.extract(headers, getter=_GETTER)


def extract_http(headers: Mapping[str, str]) -> Context:
    """The trace context of an HTTP request's `traceparent` (an empty context when none)."""
    return _W3C.extract(headers)


def context_headers(context: Context | None = None) -> list[tuple[str, bytes]]:
    """`traceparent` (and `tracestate`) of `context`, or of the current span; none when no
    span is recording there."""
    carrier: list[tuple[str, bytes]] = []
    _W3C.inject(carrier, context=context, setter=_SETTER)
    return carrier


def span_headers(span: Span) -> list[tuple[str, bytes]]:
    return context_headers(trace.set_span_in_context(span))


def has_trace(headers: KafkaHeaders) -> bool:
    return any(name == TRACEPARENT for name, _ in headers)


def link_to(headers: KafkaHeaders) -> Link | None:
    """A link to the context a record carries, when it carries a valid one."""
    context = trace.get_current_span(extract(headers)).get_span_context()
    return Link(context) if context.is_valid else None


def trace_id_of(span: Span) -> str | None:
    """The span's trace id as the W3C header writes it, for log lines."""
    context = span.get_span_context()
    return trace.format_trace_id(context.trace_id) if context.is_valid else None
