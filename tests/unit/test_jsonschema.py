"""The committed JSON Schema files (read by analytics) are exactly what the models generate."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from schemas.jsonschema import JSON_DIR, MODELS, render


@pytest.mark.parametrize(("name", "model"), MODELS.items(), ids=list(MODELS))
def test_committed_schema_file_matches_its_model(name: str, model: type[BaseModel]) -> None:
    path = JSON_DIR / name
    assert path.exists(), f"{name} missing: run python -m schemas.jsonschema"
    assert path.read_text(encoding="utf-8") == render(model), (
        f"{name} is stale: run python -m schemas.jsonschema and commit it"
    )


def test_every_committed_schema_file_belongs_to_a_model() -> None:
    assert {path.name for path in JSON_DIR.glob("*.json")} == set(MODELS)


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
