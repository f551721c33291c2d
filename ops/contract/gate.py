"""The gate on breaking changes: the current documents against the last released copy.

A change breaks a reader or a writer when some value one side may now send is refused by
the other. For the event schemas jsoncompat decides this for every pair of JSON Schemas (a
removed or retyped field, a newly required one, a narrowed enum); they have writers and
readers both, so they must stay compatible both ways. The OpenAPI document is compared by
oasdiff (ops/contract/oasdiff.py), which knows what a request and an answer may change.
Such a change passes only when `schema_version` moves past the released one and the
changelog's Unreleased section names the new version.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsoncompat

from ops.contract import oasdiff
from ops.contract.documents import DOCUMENTS
from schemas import jsonschema

RELEASED_DIR = jsonschema.JSON_DIR.parent / "released"
CHANGELOG = Path(__file__).resolve().parents[2] / "CHANGELOG.md"
ASYNCAPI = "asyncapi.json"
OPENAPI = "openapi.json"

# A contract: each document by its path relative to a release's folder, parsed.
Contract = Mapping[str, Any]


def relative_name(path: Path) -> str:
    return f"json/{path.name}" if path.parent == jsonschema.JSON_DIR else path.name


def current() -> dict[str, Any]:
    """The committed documents as they are now."""
    return {relative_name(d.path): json.loads(d.path.read_text("utf-8")) for d in DOCUMENTS}


def released(version: int) -> dict[str, Any]:
    folder = RELEASED_DIR / f"v{version}"
    return {
        str(path.relative_to(folder)): json.loads(path.read_text("utf-8"))
        for path in sorted(folder.rglob("*.json"))
    }


def latest_release() -> int:
    versions = [int(p.name[1:]) for p in RELEASED_DIR.glob("v*") if p.name[1:].isdigit()]
    if not versions:
        raise FileNotFoundError(f"no released contract under {RELEASED_DIR}")
    return max(versions)


def _event_key(name: str) -> str:
    # `json/publish_requested.v1.json` and its `.v2` successor are the same event.
    return re.sub(r"\.v\d+\.json$", "", name)


def _compatible(old: Any, new: Any, role: jsoncompat.RoleLiteral) -> bool:
    def plain(schema: Any) -> str:
        # `$id` names a document (jsoncompat would try to resolve it); it constrains nothing.
        body = {key: value for key, value in schema.items() if key != "$id"}
        return json.dumps({"$schema": jsonschema.DRAFT, **body})

    return jsoncompat.check_compat(plain(old), plain(new), role)


def _events(old: Contract, new: Contract) -> list[str]:
    found = []
    now = {_event_key(name): name for name in new if name.startswith("json/")}
    for name in (name for name in old if name.startswith("json/")):
        successor = now.get(_event_key(name))
        if successor is None:
            found.append(f"{name}: removed")
        elif not _compatible(old[name], new[successor], "both"):
            found.append(f"{name} -> {successor}: breaks a reader or a writer (jsoncompat)")
    return found


def _asyncapi(old: Any, new: Any) -> list[str]:
    found = []
    for channel, was in old["channels"].items():
        now = new["channels"].get(channel)
        if now is None:
            found.append(f"asyncapi: channel {channel} removed")
            continue
        if now["address"] != was["address"]:
            found.append(f"asyncapi: channel {channel} moved to {now['address']}")
        for message, before in was["messages"].items():
            after = now["messages"].get(message)
            if after is None:
                found.append(f"asyncapi: message {message} removed")
                continue
            if after["bindings"]["kafka"]["key"] != before["bindings"]["kafka"]["key"]:
                found.append(f"asyncapi: message {message}'s key changed")
            if after.get("payload") != before.get("payload"):
                found.append(f"asyncapi: message {message}'s payload is another document")
            if "headers" in before and not _compatible(
                before["headers"], after.get("headers", {}), "both"
            ):
                found.append(f"asyncapi: message {message}'s headers break a reader or writer")
    for operation in old["operations"]:
        if operation not in new["operations"]:
            found.append(f"asyncapi: operation {operation} removed")
    return found


def _openapi(old: Any, new: Any) -> list[str]:
    """oasdiff's breaking changes from `old` to `new`, at WARN and above."""
    return [
        f"openapi: {change['operation']} {change['path']}: {change['text']} ({change['id']})"
        for change in oasdiff.breaking(old, new)
    ]


def breaking_changes(old: Contract, new: Contract) -> list[str]:
    """What in `new` breaks a reader or a writer of `old`."""
    return [
        *_events(old, new),
        *_asyncapi(old[ASYNCAPI], new[ASYNCAPI]),
        *_openapi(old[OPENAPI], new[OPENAPI]),
    ]


def unreleased_notes(changelog: str) -> str:
    match = re.search(r"^## Unreleased\n(.*?)(?=^## |\Z)", changelog, re.M | re.S)
    return match.group(1) if match else ""


def refusals(
    old: Contract, old_version: int, new: Contract, new_version: int, changelog: str
) -> list[str]:
    """Why the gate refuses `new` (empty when it passes)."""
    breaking = breaking_changes(old, new)
    if not breaking:
        return []
    if new_version > old_version and f"schema_version {new_version}" in unreleased_notes(changelog):
        return []
    return [
        *breaking,
        f"breaking against released v{old_version}: move schema_version past {old_version} "
        f"and say `schema_version {old_version + 1}` under ## Unreleased in CHANGELOG.md",
    ]
