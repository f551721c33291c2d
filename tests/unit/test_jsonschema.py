"""The committed JSON Schema files (read by analytics) are exactly what the models generate."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from schemas.jsonschema import JSON_DIR, MODELS, render


@pytest.mark.parametrize(("name", "model"), MODELS.items(), ids=list(MODELS))
def test_committed_schema_file_matches_its_model(name: str, model: type[BaseModel]) -> None:
    path = JSON_DIR / name
    assert path.exists(), f"{name} missing: run python -m ops.contract write"
    assert path.read_text(encoding="utf-8") == render(name, model), (
        f"{name} is stale: run python -m ops.contract write and commit it"
    )


def test_every_committed_schema_file_belongs_to_a_model() -> None:
    assert {path.name for path in JSON_DIR.glob("*.json")} == set(MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_each_schema_declares_its_draft_and_its_id(name: str) -> None:
    schema = json.loads((JSON_DIR / name).read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith("/" + name)


def test_request_schema_refuses_unknown_fields_and_requires_the_contract_fields() -> None:
    schema = json.loads((JSON_DIR / "publish_requested.v1.json").read_text(encoding="utf-8"))
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {
        "event_id",
        "schema_version",
        "occurred_at",
        "user_id",
        "store_id",
        "confirm_publish",
    }
    assert schema["properties"]["schema_version"]["const"] == 1


def test_outcome_schema_lists_the_contract_statuses_and_reasons() -> None:
    schema = json.loads((JSON_DIR / "publish_outcome.v1.json").read_text(encoding="utf-8"))
    definitions = schema["$defs"]
    assert set(definitions["Status"]["enum"]) == {
        "published",
        "already_published",
        "gated",
        "rejected",
        "failed",
    }
    assert "missing_steps" in definitions["Reason"]["enum"]
    assert schema["additionalProperties"] is False
