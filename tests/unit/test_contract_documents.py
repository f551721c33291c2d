"""The committed AsyncAPI and OpenAPI documents are exactly what the code generates, and say
what the contract says: the four topics with their keys and headers, every gateway route."""

from __future__ import annotations

import json

import pytest
from openapi_spec_validator import validate

from ops.contract.documents import DOCUMENTS, Document
from ops.gateway.openapi import OPENAPI_PATH
from schemas.asyncapi import ASYNCAPI_PATH
from schemas.dead_letter import DLQ_HEADER_NAMES


@pytest.mark.parametrize("document", DOCUMENTS, ids=[d.name for d in DOCUMENTS])
def test_committed_document_matches_what_the_code_generates(document: Document) -> None:
    assert not document.stale(), f"{document.path}: run python -m ops.contract write, commit it"


def test_asyncapi_names_the_four_topics_their_keys_and_the_contract_headers() -> None:
    spec = json.loads(ASYNCAPI_PATH.read_text(encoding="utf-8"))
    addresses = {channel["address"] for channel in spec["channels"].values()}
    assert addresses == {
        "store.publish.requested",
        "store.publish.outcomes",
        "store.publish.dlq",
        "store.publish.alerts",
    }
    requested = spec["channels"]["requested"]["messages"]["PublishRequested"]
    assert requested["payload"] == {"$ref": "./json/publish_requested.v1.json"}
    assert {"signature", "replay.count"} <= set(requested["headers"]["properties"])
    dead_letter = spec["channels"]["dlq"]["messages"]["DeadLetter"]
    assert set(DLQ_HEADER_NAMES) <= set(dead_letter["headers"]["required"])
    readers = [op for op in spec["operations"].values() if op["action"] == "receive"]
    assert all(op["x-kafka-isolation-level"] == "read_committed" for op in readers)


def test_openapi_is_valid_and_documents_every_status_of_the_front_door_table() -> None:
    spec = json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))
    validate(spec)
    post = spec["paths"]["/api/store/publish"]["post"]
    statuses = {"200", "202", "400", "401", "403", "404", "409", "413", "429", "500", "503"}
    assert set(post["responses"]) == statuses
    names = {parameter["name"] for parameter in post["parameters"]}
    assert names == {"Idempotency-Key", "Prefer", "X-Correlation-Id"}
    assert "Retry-After" in post["responses"]["429"]["headers"]
    assert "Location" in post["responses"]["202"]["headers"]
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
