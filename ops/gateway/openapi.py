"""The gateway as an OpenAPI 3.1 document: every route, status, header and body of the
contract's front-door table, with the bearer scheme. Built from the same constants as the
answers (answers.py) and the body model (body.py); `python -m ops.contract write`
regenerates the committed `openapi.json`, which the gateway serves at `/openapi.json`."""

from __future__ import annotations

import json
from pathlib import Path

from ops.gateway import answers
from ops.gateway.body import MAX_BODY_BYTES, PublishBody
from schemas.events import SCHEMA_VERSION

OPENAPI_PATH = Path(__file__).parent / "openapi.json"
OPENAPI_ROUTE = "/openapi.json"
_JSON = "application/json"
_REF = "#/components/schemas/"
POLL_OPERATION = "pollPublish"


def _ref(name: str) -> dict[str, object]:
    return {"$ref": _REF + name}


def _error(texts: list[str], **properties: object) -> dict[str, object]:
    """A body `{"error": one of texts, ...properties, "correlationId"}`."""
    error = {"const": texts[0]} if len(texts) == 1 else {"enum": texts}
    return {
        "type": "object",
        "required": ["error", "correlationId"],
        "properties": {
            "error": {"type": "string", **error},
            **properties,
            "correlationId": _ref("CorrelationId"),
        },
        "additionalProperties": False,
    }


_DETAILS = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["path", "message"],
        "properties": {
            "path": {"type": "array", "items": {"type": "string"}},
            "message": {"type": "string"},
        },
        "additionalProperties": False,
    },
}

_SCHEMAS: dict[str, object] = {
    "CorrelationId": {"type": "string", "minLength": 1, "maxLength": 128},
    "PublishBody": PublishBody.model_json_schema(by_alias=True),
    "Published": {
        "type": "object",
        "required": ["success", "message", "storeUrl", "publishedAt", "correlationId"],
        "properties": {
            "success": {"const": True},
            "message": {"type": "string", "const": answers.PUBLISHED_MESSAGE},
            "storeUrl": {"type": "string"},
            "publishedAt": {"type": "string", "format": "date-time"},
            "correlationId": _ref("CorrelationId"),
        },
        "additionalProperties": False,
    },
    "Pending": {
        "type": "object",
        "required": ["status", "requestId", "correlationId"],
        "properties": {
            "status": {"const": "pending"},
            "requestId": {"type": "string", "format": "uuid"},
            "correlationId": _ref("CorrelationId"),
        },
        "additionalProperties": False,
    },
    "InvalidBody": _error(
        ["Invalid request body", "Invalid JSON in request body"], details=_DETAILS
    ),
    "Unauthorized": _error(["Unauthorized"]),
    "Forbidden": _error(["Forbidden"]),
    "NotFound": _error(["Store not found", "Request not found"]),
    "AlreadyPublished": _error(["Store already published"]),
    "Gated": {
        **_error(
            ["PRECONDITION_REQUIRED"],
            message={"type": "string", "const": answers.GATED_MESSAGE},
            missingStep={"type": "string"},
            missingSteps={"type": "array", "items": {"type": "string"}, "minItems": 1},
            action={
                "type": "object",
                "required": ["type", "modal", "prefill"],
                "properties": {
                    "type": {"const": "open_modal"},
                    "modal": {"const": "payments_setup"},
                    "prefill": {
                        "type": "object",
                        "required": ["returnUrl", "userId"],
                        "properties": {
                            "returnUrl": {"const": answers.ROUTE},
                            "userId": {"type": "string", "format": "uuid"},
                        },
                        "additionalProperties": False,
                    },
                },
                "additionalProperties": False,
            },
        ),
        "required": ["error", "message", "missingStep", "missingSteps", "action", "correlationId"],
    },
    "TooManyRequests": _error(["Too many requests"]),
    "FailedToPublish": _error(["Failed to publish store"], details={"type": "string"}),
    "Unavailable": _error(["Gating unavailable", "Service unavailable"]),
    "Health": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string", "enum": ["ok", "stopping", "degraded"]}},
    },
}


def _header(description: str, schema: dict[str, object] | None = None) -> dict[str, object]:
    return {"description": description, "schema": schema or {"type": "string"}}


_HEADERS: dict[str, object] = {
    "X-Correlation-Id": _header("The request's correlation id.", _ref("CorrelationId")),
    "Cache-Control": _header("Never cached."),
    "Location": _header(f"Where to poll: {answers.ROUTE}/{{requestId}}."),
    "Retry-After": _header("Seconds until the caller may try again.", {"type": "integer"}),
}


def _answer(description: str, schema: str, headers: tuple[str, ...] = ()) -> dict[str, object]:
    answer: dict[str, object] = {
        "description": description,
        "content": {_JSON: {"schema": _ref(schema)}},
    }
    if headers:
        answer["headers"] = {name: {"$ref": f"#/components/headers/{name}"} for name in headers}
    return answer


# The answers a decided request gets, on the POST and on the poll alike (answers.answer_for).
_DECIDED: dict[str, object] = {
    "200": _answer("`published`", "Published", ("X-Correlation-Id", "Cache-Control")),
    "202": {
        **_answer(
            "Not decided within the wait, paused, or `Prefer: respond-async`: poll `Location`.",
            "Pending",
            ("Location", "Cache-Control"),
        ),
        # What `Location` says, in the form tools follow (Schemathesis' stateful phase, client
        # generators): the body's requestId is the poll's path parameter.
        "links": {
            "poll": {
                "operationId": POLL_OPERATION,
                "parameters": {"requestId": "$response.body#/requestId"},
                "description": "The answer once decided; 202 again while pending.",
            }
        },
    },
    "400": _answer(
        "`rejected` / `invalid_payload`, `not_confirmed`; a body not of the schema; "
        "unreadable JSON; an Idempotency-Key outside 1 to 255 characters.",
        "InvalidBody",
    ),
    "401": _answer("Token missing, invalid or expired; `user_not_found`.", "Unauthorized"),
    "403": _answer("`forbidden`", "Forbidden"),
    "404": _answer("No store for the user; `store_not_found`.", "NotFound"),
    "409": {
        "description": "`already_published`, or `gated` with every missing step.",
        "content": {
            _JSON: {"schema": {"oneOf": [_ref("AlreadyPublished"), _ref("Gated")]}},
        },
    },
    "500": _answer("`failed` / `retries_exhausted`", "FailedToPublish"),
    "503": _answer(
        "`failed` / `gating_unavailable`, or the store or pause switch unreadable: fails closed.",
        "Unavailable",
    ),
}

_CORRELATION_PARAMETER = {
    "name": "X-Correlation-Id",
    "in": "header",
    "required": False,
    "description": "Kept when 1 to 128 characters; a new one otherwise.",
    "schema": {"type": "string"},
}


def document() -> dict[str, object]:
    """The OpenAPI 3.1 document of the gateway."""
    publish = {
        "operationId": "publishStore",
        "summary": "Publish the caller's store, answered as the original endpoint did.",
        "security": [{"bearer": []}],
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "The same key from the same user is the same request.",
                "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            },
            {
                "name": "Prefer",
                "in": "header",
                "required": False,
                "description": "`respond-async`: answer 202 at once.",
                "schema": {"type": "string"},
            },
            _CORRELATION_PARAMETER,
        ],
        "requestBody": {
            "required": False,
            "content": {_JSON: {"schema": _ref("PublishBody")}},
        },
        "responses": {
            **_DECIDED,
            "413": _answer(f"A body over {MAX_BODY_BYTES} bytes, refused unread.", "InvalidBody"),
            "429": _answer("Over the per-user rate.", "TooManyRequests", ("Retry-After",)),
        },
    }
    poll = {
        "operationId": POLL_OPERATION,
        "summary": "The answer once decided, 202 while pending; 404 for an unknown id or "
        "another user's request.",
        "security": [{"bearer": []}],
        "parameters": [
            {
                "name": "requestId",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "format": "uuid"},
            },
            _CORRELATION_PARAMETER,
        ],
        "responses": _DECIDED,
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Store publish gateway",
            "version": str(SCHEMA_VERSION),
            "description": "`store-publish gateway`, the HTTP front door of the store publish "
            "pipeline (../shared/CONTRACT.md). info.version is the events' schema_version.",
        },
        "paths": {
            answers.ROUTE: {"post": publish},
            answers.ROUTE + "/{requestId}": {"get": poll},
            "/health": {
                "get": {
                    "operationId": "health",
                    "responses": {
                        "200": _answer("Serving.", "Health"),
                        "503": _answer("Stopping.", "Health"),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "responses": {
                        "200": {
                            "description": "Prometheus text format.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            OPENAPI_ROUTE: {
                "get": {
                    "operationId": "openapi",
                    "responses": {
                        "200": {
                            "description": "This document.",
                            "content": {_JSON: {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": _SCHEMAS,
            "headers": _HEADERS,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "HS256 under JWT_SECRET; `sub` the user id, `exp` required.",
                }
            },
        },
    }


def render() -> str:
    return json.dumps(document(), indent=2) + "\n"
