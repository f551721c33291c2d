"""JSON Schema files for the contract's events, generated from the models.

Regenerate with `python -m schemas.jsonschema`; a test checks the committed files match.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from schemas.dead_letter import DeadLetterHeaders
from schemas.events import Alert, PublishOutcome, PublishRequested

JSON_DIR = Path(__file__).parent / "json"
MODELS: dict[str, type[BaseModel]] = {
    "publish_requested.v1.json": PublishRequested,
    "publish_outcome.v1.json": PublishOutcome,
    "alert.v1.json": Alert,
    "dead_letter_headers.v1.json": DeadLetterHeaders,
}


def render(model: type[BaseModel]) -> str:
    return (
        json.dumps(model.model_json_schema(mode="serialization"), indent=2, sort_keys=True) + "\n"
    )


def main() -> None:
    JSON_DIR.mkdir(exist_ok=True)
    for name, model in MODELS.items():
        (JSON_DIR / name).write_text(render(model), encoding="utf-8")


if __name__ == "__main__":
    main()
