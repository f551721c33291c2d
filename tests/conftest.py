"""The fixtures live in tests/fixtures (a package, one module per kind); helpers that are not
fixtures in tests/helpers. Nothing here is meant to be imported."""

pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.settings",
    "tests.fixtures.creators",
    "tests.fixtures.processes",
    "tests.fixtures.faults",
    "tests.fixtures.security",
    "tests.fixtures.cluster",
    "tests.fixtures.gateway",
]
