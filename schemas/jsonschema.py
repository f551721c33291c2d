"""JSON Schema files for the contract's events, generated from the models.

Each declares its draft (`$schema`, the one pydantic writes) and a stable `$id`, so any
validator picks the right rules and a reader can tell the documents apart. Regenerate every
contract document with `python -m ops.contract write`; a test checks the committed files match.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from schemas.dead_letter import DeadLetterHeaders
from schemas.events import Alert, PublishOutcome, PublishRequested

JSON_DIR = Path(__file__).parent / "json"
DRAFT = "https://json-schema.org/draft/2020-12/schema"
# Ids name the document, not a place to fetch it from: nothing is served at this base.
ID_BASE = "https://schemas.store-publish.dev/"
MODELS: dict[str, type[BaseModel]] = {
    "publish_requested.v1.json": PublishRequested,
    "publish_outcome.v1.json": PublishOutcome,
    "alert.v1.json": Alert,
    "dead_letter_headers.v1.json": DeadLetterHeaders,
}


def schema_of(name: str, model: type[BaseModel]) -> dict[str, object]:
    """The JSON Schema of `model`, published as `name`."""
    generated = model.model_json_schema(mode="serialization")
    return {"$schema": DRAFT, "$id": ID_BASE + name, **generated}


def render(name: str, model: type[BaseModel]) -> str:
    return json.dumps(schema_of(name, model), indent=2, sort_keys=True) + "\n"
