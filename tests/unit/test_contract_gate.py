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


def _prefer(document: dict[str, Any]) -> dict[str, Any]:
    """The POST's `Prefer` parameter's schema."""
    parameters = document["paths"][PUBLISH[0]][PUBLISH[1]]["parameters"]
    (prefer,) = [p for p in parameters if p["name"] == "Prefer"]
    schema: dict[str, Any] = prefer["schema"]
    return schema


def _changed(released: dict[str, Any], change: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The released contract (as the change needs it) and the same with `change` made."""
    old = copy.deepcopy(released)
    if change == "openapi: narrowed request enum":
        # The released document has no enum a client sends; one that had one.
        _prefer(old["openapi.json"])["enum"] = ["respond-async", "wait"]
    new = copy.deepcopy(old)
    request, outcome = new[REQUESTED], new[OUTCOME]
    openapi = new["openapi.json"]
    schemas = openapi["components"]["schemas"]
    if change == "event: removed field":
        del request["properties"]["notify_customers"]
    elif change == "event: retyped field":
        request["properties"]["confirm_publish"] = {"type": "string"}
    elif change == "event: newly required field":
        request["required"].append("correlation_id")
    elif change == "event: narrowed enum":
        outcome["$defs"]["Status"]["enum"].remove("gated")
    elif change == "openapi: removed request field":
        del schemas["PublishBody"]["properties"]["notifyCustomers"]
    elif change == "openapi: removed answer field":
        del schemas["Published"]["properties"]["storeUrl"]
        schemas["Published"]["required"].remove("storeUrl")
    elif change == "openapi: retyped request field":
        schemas["PublishBody"]["properties"]["confirmPublish"] = {"type": "string"}
    elif change == "openapi: retyped answer field":
        schemas["Published"]["properties"]["storeUrl"] = {"type": "integer"}
    elif change == "openapi: newly required field":
        schemas["PublishBody"]["required"] = ["confirmPublish"]
    elif change == "openapi: narrowed request enum":
        _prefer(openapi)["enum"].remove("wait")
    elif change == "openapi: widened answer enum":
        schemas["Health"]["properties"]["status"]["enum"].append("paused")
    elif change == "openapi: removed answer header":
        del openapi["paths"][PUBLISH[0]][PUBLISH[1]]["responses"]["429"]["headers"]
    elif change == "openapi: added status":
        answers = openapi["paths"][PUBLISH[0]][PUBLISH[1]]["responses"]
        answers["422"] = answers["400"]
    elif change == "openapi: removed route":
        del openapi["paths"]["/health"]
    elif change == "asyncapi: removed channel":
        del new["asyncapi.json"]["channels"]["alerts"]
    return old, new


BREAKING = [
    "event: removed field",
    "event: retyped field",
    "event: newly required field",
    "event: narrowed enum",
    "openapi: removed request field",
    "openapi: removed answer field",
    "openapi: retyped request field",
    "openapi: retyped answer field",
    "openapi: newly required field",
    "openapi: narrowed request enum",
    "openapi: widened answer enum",
    "openapi: removed answer header",
    "openapi: added status",
    "openapi: removed route",
    "asyncapi: removed channel",
]


@pytest.mark.parametrize("change", BREAKING)
def test_a_breaking_change_is_refused_while_schema_version_stays(
    released: dict[str, Any], change: str
) -> None:
    old, new = _changed(released, change)
    found = gate.refusals(old, 1, new, 1, ANNOUNCED)
    print(f"{change}: " + " | ".join(found))
    assert found, f"the gate let a {change} through"
    # Refused by the right checker: each document's changes are named after it.
    assert found[0].startswith(change.split(":")[0].replace("event", "json/")), found
    assert "move schema_version past 1" in found[-1]


def test_a_breaking_change_is_refused_when_the_changelog_does_not_say_so(
    released: dict[str, Any],
) -> None:
    _, new = _changed(released, "event: narrowed enum")
    silent = "# Changelog\n\n## Unreleased\n\n- tidied.\n\n## 0.2.0\n\n- schema_version 2\n"
    assert gate.refusals(released, 1, new, 2, silent)


def test_a_breaking_change_passes_with_a_new_schema_version_the_changelog_announces(
    released: dict[str, Any],
) -> None:
    _, new = _changed(released, "event: narrowed enum")
    new["json/publish_outcome.v2.json"] = new.pop(OUTCOME)
    assert gate.refusals(released, 1, new, 2, ANNOUNCED) == []


def test_a_compatible_change_passes_without_a_new_version(released: dict[str, Any]) -> None:
    new = copy.deepcopy(released)
    new[REQUESTED]["description"] = "Reworded: descriptions constrain nothing."
    # A new optional answer header and a new link: nothing a client relied on changes.
    answer = new["openapi.json"]["paths"][PUBLISH[0]][PUBLISH[1]]["responses"]["200"]
    answer["headers"]["Retry-After"] = {"$ref": "#/components/headers/Retry-After"}
    assert gate.refusals(released, 1, new, 1, "") == []
