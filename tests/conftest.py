"""The fixtures live in tests/fixtures (a package, one module per kind); helpers that are not
fixtures in tests/helpers. Nothing here is meant to be imported.

A test's layer is the folder it stands in: tests/integration, tests/faults and tests/security
are marked here, so `-m` selects them and no module has to remember its own marker."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.settings",
    "tests.fixtures.creators",
    "tests.fixtures.processes",
    "tests.fixtures.faults",
    "tests.fixtures.security",
    "tests.fixtures.cluster",
    "tests.fixtures.gateway",
    "tests.fixtures.tracing",
]

TESTS = Path(__file__).resolve().parent
LAYER_MARKS = {
    "integration": pytest.mark.integration,
    "faults": pytest.mark.faults,
    "security": pytest.mark.security,
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        try:
            folder = item.path.resolve().relative_to(TESTS).parts[0]
        except ValueError:
            continue
        mark = LAYER_MARKS.get(folder)
        if mark is not None:
            item.add_marker(mark)
