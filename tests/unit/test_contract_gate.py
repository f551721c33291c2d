"""The gate on breaking changes: the current contract passes against its release; a change
that would break a reader or a writer is refused unless schema_version moves and the
changelog says so. The breaking changes are made here, on copies, never in main."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ops.contract import gate
from schemas.events import SCHEMA_VERSION

REQUESTED = "json/publish_requested.v1.json"
OUTCOME = "json/publish_outcome.v1.json"
PUBLISH = ("/api/store/publish", "post")
ANNOUNCED = "# Changelog\n\n## Unreleased\n\n- schema_version 2: outcomes lose `gated`.\n"


@pytest.fixture
def released() -> dict[str, Any]:
    return gate.released(gate.latest_release())


def test_the_current_contract_is_compatible_with_its_release(released: dict[str, Any]) -> None:
    version = gate.latest_release()
    changelog = gate.CHANGELOG.read_text("utf-8")
    assert gate.refusals(released, version, gate.current(), SCHEMA_VERSION, changelog) == []


def _changed(released: dict[str, Any], change: str) -> dict[str, Any]:
    new = copy.deepcopy(released)
    request, outcome = new[REQUESTED], new[OUTCOME]
    if change == "removed field":
        del request["properties"]["notify_customers"]
    elif change == "retyped field":
        request["properties"]["confirm_publish"] = {"type": "string"}
    elif change == "newly required field":
        request["required"].append("correlation_id")
    elif change == "narrowed enum":
        outcome["$defs"]["Status"]["enum"].remove("gated")
    elif change == "narrowed request body":
        body = new["openapi.json"]["components"]["schemas"]["PublishBody"]
        body["required"] = ["confirmPublish"]
    elif change == "retyped answer field":
        published = new["openapi.json"]["components"]["schemas"]["Published"]
        published["properties"]["storeUrl"] = {"type": "integer"}
    elif change == "removed answer header":
        answer = new["openapi.json"]["paths"][PUBLISH[0]][PUBLISH[1]]["responses"]["429"]
        del answer["headers"]
    elif change == "removed channel":
        del new["asyncapi.json"]["channels"]["alerts"]
    return new


BREAKING = [
    "removed field",
    "retyped field",
    "newly required field",
    "narrowed enum",
    "narrowed request body",
    "retyped answer field",
    "removed answer header",
    "removed channel",
]


@pytest.mark.parametrize("change", BREAKING)
def test_a_breaking_change_is_refused_while_schema_version_stays(
    released: dict[str, Any], change: str
) -> None:
    new = _changed(released, change)
    found = gate.refusals(released, 1, new, 1, ANNOUNCED)
    print(f"{change}: " + " | ".join(found))
    assert found, f"the gate let a {change} through"
    assert "move schema_version past 1" in found[-1]


def test_a_breaking_change_is_refused_when_the_changelog_does_not_say_so(
    released: dict[str, Any],
) -> None:
    new = _changed(released, "narrowed enum")
    silent = "# Changelog\n\n## Unreleased\n\n- tidied.\n\n## 0.2.0\n\n- schema_version 2\n"
    assert gate.refusals(released, 1, new, 2, silent)


def test_a_breaking_change_passes_with_a_new_schema_version_the_changelog_announces(
    released: dict[str, Any],
) -> None:
    new = _changed(released, "narrowed enum")
    new["json/publish_outcome.v2.json"] = new.pop(OUTCOME)
    assert gate.refusals(released, 1, new, 2, ANNOUNCED) == []


def test_a_compatible_change_passes_without_a_new_version(released: dict[str, Any]) -> None:
    new = copy.deepcopy(released)
    new[REQUESTED]["description"] = "Reworded: descriptions constrain nothing."
    assert gate.refusals(released, 1, new, 1, "") == []
