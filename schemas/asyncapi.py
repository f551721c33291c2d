"""The topics as an AsyncAPI 3.0 document, generated from the models and the settings'
defaults: channels with their keys, messages whose payloads reference the JSON Schema files
of `schemas/json/` (never a copy of them), headers, the operations each role performs, and
the Kafka bindings. `python -m ops.contract write` regenerates it; a test checks the
committed file matches, and the AsyncAPI project's parser validates it in CI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from schemas.dead_letter import DLQ_HEADER_NAMES, MAX_ERROR_BYTES, REPLAY_COUNT_HEADER
from schemas.events import SCHEMA_VERSION, Reason
from schemas.settings import Settings
from schemas.signing import SIGNATURE_HEADER, SIGNATURE_PREFIX

ASYNCAPI_PATH = Path(__file__).parent / "asyncapi.json"
_KAFKA_BINDING = "0.5.0"
_DEFAULTS = Settings.model_fields


def _default(name: str) -> Any:
    return _DEFAULTS[name].default


def _payload(schema_file: str) -> dict[str, object]:
    # Relative to this document, so the parser resolves it from the committed tree.
    return {"$ref": f"./json/{schema_file}"}


def _string(description: str, **rules: object) -> dict[str, object]:
    return {"type": "string", "description": description, **rules}


_COUNT = r"^[0-9]+$"
_DLQ_HEADERS: dict[str, dict[str, object]] = dict(
    zip(
        DLQ_HEADER_NAMES,
        (
            _string("Why it was dead-lettered.", enum=[reason.value for reason in Reason]),
            _string(f"What went wrong, at most {MAX_ERROR_BYTES} bytes of UTF-8, no secrets."),
            _string("The topic the request was read from."),
            _string("Its partition there.", pattern=_COUNT),
            _string("Its offset there.", pattern=_COUNT),
            _string("Publish attempts made.", pattern=_COUNT),
            _string("When it was dead-lettered (ISO 8601 with offset).", format="date-time"),
            _string("The outcome's correlation id."),
        ),
        strict=True,
    )
)
_SIGNATURE = _string(
    f"`{SIGNATURE_PREFIX}` + lowercase hex HMAC-SHA256 of the exact value bytes under "
    "EVENT_SIGNING_SECRET; required where that secret is set.",
    pattern=f"^{SIGNATURE_PREFIX}[0-9a-f]{{64}}$",
)
_REPLAY_COUNT = _string(
    "Set by `store-publish dlq replay`: how many times replayed.", pattern=_COUNT
)
_TRACE = {
    "traceparent": _string("W3C trace context, continued by the consumer."),
    "tracestate": _string("W3C trace state, carried with traceparent."),
}
_OUTCOME_TRACE = {
    "traceparent": _string(
        "W3C trace context of the consumer's span for the request, in the request's trace; "
        "set when the consumer runs with tracing on."
    ),
    "tracestate": _string("W3C trace state, carried with traceparent."),
}
# Described, not typed: a dead letter kept any header its request came with since v1,
# these among them, so a type here would narrow what v1 allowed (the gate says so).
_DEAD_LETTER_TRACE: dict[str, dict[str, object]] = {
    "traceparent": {
        "description": "The request's own W3C trace context, kept as it came; when it came "
        "without one and the consumer runs with tracing on, that of the consumer's span for it."
    },
    "tracestate": {"description": "W3C trace state, carried with traceparent."},
}


def _headers(properties: dict[str, dict[str, object]], required: list[str]) -> dict[str, object]:
    return {"type": "object", "properties": properties, "required": required}


def _key(description: str) -> dict[str, object]:
    return {"type": "string", "description": f"UTF-8: {description}"}


def _message(
    name: str, summary: str, payload: dict[str, object], headers: dict[str, object] | None, key: str
) -> dict[str, object]:
    message: dict[str, object] = {
        "name": name,
        "title": name,
        "summary": summary,
        "contentType": "application/json",
        "payload": payload,
        "bindings": {"kafka": {"key": _key(key), "bindingVersion": _KAFKA_BINDING}},
    }
    if headers is not None:
        message["headers"] = headers
    return message


def _channel(
    setting: str, retention: str, description: str, message: str, body: dict[str, object]
) -> dict[str, object]:
    return {
        "address": _default(setting),
        "description": f"{description} Name set by {setting.upper()}.",
        "messages": {message: body},
        "bindings": {
            "kafka": {
                "topic": _default(setting),
                "partitions": _default("topic_partitions"),
                "replicas": _default("topic_replication_factor"),
                "topicConfiguration": {
                    "cleanup.policy": [_default("topic_cleanup_policy")],
                    "retention.ms": _default(retention),
                },
                "bindingVersion": _KAFKA_BINDING,
            }
        },
    }


def _operation(
    action: str, channel: str, message: str, role: str, summary: str, *, group: str | None = None
) -> dict[str, object]:
    operation: dict[str, object] = {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "messages": [{"$ref": f"#/channels/{channel}/messages/{message}"}],
        "summary": summary,
        "tags": [{"name": role}],
    }
    if action == "receive":
        # Readers see only committed records: the consumer writes in Kafka transactions, and
        # an aborted batch's outcomes must never be counted.
        operation["x-kafka-isolation-level"] = "read_committed"
    if group is not None:
        operation["bindings"] = {"kafka": {"groupId": {"type": "string", "enum": [group]}}}
    return operation


def document() -> dict[str, object]:
    """The AsyncAPI 3.0 document of the four topics."""
    group = _default("consumer_group")
    request_headers = _headers(
        {SIGNATURE_HEADER: _SIGNATURE, REPLAY_COUNT_HEADER: _REPLAY_COUNT, **_TRACE}, []
    )
    dead_letter_headers = _headers(
        {
            **_DLQ_HEADERS,
            SIGNATURE_HEADER: _SIGNATURE,
            REPLAY_COUNT_HEADER: _REPLAY_COUNT,
            **_DEAD_LETTER_TRACE,
        },
        list(DLQ_HEADER_NAMES),
    )
    outcome_headers = _headers(_OUTCOME_TRACE, [])
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Store publish pipeline",
            "version": str(SCHEMA_VERSION),
            "description": "Topics of the store publish pipeline (../shared/CONTRACT.md). "
            "Keys are UTF-8 strings; info.version is the events' schema_version.",
        },
        "defaultContentType": "application/json",
        "channels": {
            "requested": _channel(
                "topic_requests",
                "topic_requests_retention_ms",
                "Publish requests.",
                "PublishRequested",
                _message(
                    "PublishRequested",
                    "A creator asks for their store to be published.",
                    _payload("publish_requested.v1.json"),
                    request_headers,
                    "the request's store_id",
                ),
            ),
            "outcomes": _channel(
                "topic_outcomes",
                "topic_outcomes_retention_ms",
                "One outcome per request event_id.",
                "PublishOutcome",
                _message(
                    "PublishOutcome",
                    "What became of one request.",
                    _payload("publish_outcome.v1.json"),
                    outcome_headers,
                    "the outcome's store_id",
                ),
            ),
            "dlq": _channel(
                "topic_dlq",
                "topic_dlq_retention_ms",
                "Dead letters: the original key and value bytes, unchanged.",
                "DeadLetter",
                _message(
                    "DeadLetter",
                    "A refused or failed request, as received, with why and where from.",
                    {"description": "The original value bytes, unchanged: any bytes at all."},
                    dead_letter_headers,
                    "the original key",
                ),
            ),
            "alerts": _channel(
                "topic_alerts",
                "topic_alerts_retention_ms",
                "Alert state changes over the outcome stream.",
                "Alert",
                _message(
                    "Alert",
                    "An alert rule changed state.",
                    _payload("alert.v1.json"),
                    None,
                    "the alert name",
                ),
            ),
        },
        "operations": {
            "emitRequest": _operation(
                "send",
                "requested",
                "PublishRequested",
                "upstream",
                "Upstream services, `store-publish emit` and the gateway ask for a publish.",
            ),
            "replayDeadLetter": _operation(
                "send",
                "requested",
                "PublishRequested",
                "oncall",
                "`store-publish dlq replay` "
                "re-sends a dead letter's key, value and original headers, with replay.count.",
            ),
            "decideRequest": _operation(
                "receive",
                "requested",
                "PublishRequested",
                "consumer",
                "The publish consumer decides each request.",
                group=group,
            ),
            "sendOutcome": _operation(
                "send",
                "outcomes",
                "PublishOutcome",
                "consumer",
                "The publish consumer, alone, writes outcomes (in a Kafka transaction).",
            ),
            "sendDeadLetter": _operation(
                "send",
                "dlq",
                "DeadLetter",
                "consumer",
                "The publish consumer dead-letters what was rejected or failed.",
            ),
            "rateOutcomes": _operation(
                "receive",
                "outcomes",
                "PublishOutcome",
                "stream",
                "The rates stream counts outcomes.",
            ),
            "readOutcomes": _operation(
                "receive",
                "outcomes",
                "PublishOutcome",
                "analytics",
                "Analytics (and the gateway) read outcomes.",
            ),
            "readDeadLetters": _operation(
                "receive", "dlq", "DeadLetter", "oncall", "On-call lists and shows dead letters."
            ),
            "sendAlert": _operation(
                "send", "alerts", "Alert", "stream", "The rates stream raises and resolves alerts."
            ),
            "receiveAlert": _operation(
                "receive", "alerts", "Alert", "paging", "Paging and notification."
            ),
        },
    }


def render() -> str:
    return json.dumps(document(), indent=2) + "\n"
