"""Every generated contract document: where it is committed and what generates it. One list,
so writing, checking and releasing treat every document the same way."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ops.gateway import openapi
from schemas import asyncapi, jsonschema


@dataclass(frozen=True)
class Document:
    path: Path
    render: Callable[[], str]

    @property
    def name(self) -> str:
        return self.path.name

    def stale(self) -> bool:
        """The committed file is missing or differs from what the code generates."""
        return not self.path.exists() or self.path.read_text(encoding="utf-8") != self.render()


def _schema(name: str) -> Document:
    model = jsonschema.MODELS[name]
    return Document(jsonschema.JSON_DIR / name, lambda: jsonschema.render(name, model))


DOCUMENTS: tuple[Document, ...] = (
    *(_schema(name) for name in jsonschema.MODELS),
    Document(asyncapi.ASYNCAPI_PATH, asyncapi.render),
    Document(openapi.OPENAPI_PATH, openapi.render),
)


def write() -> list[Path]:
    """Regenerates every document; the paths that changed."""
    changed = []
    for document in DOCUMENTS:
        if document.stale():
            document.path.write_text(document.render(), encoding="utf-8")
            changed.append(document.path)
    return changed
