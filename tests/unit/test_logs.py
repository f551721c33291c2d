"""The JSON log lines: one object per line, the fields the runbook's commands read, and a line
for whatever a field holds."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import structlog

from ops.runtime.logs import SERVICE, configure_logging


@pytest.fixture(autouse=True)
def _restored() -> Iterator[None]:
    # Each test configures logging itself, once capsys has replaced stdout; the process's
    # logging is put back after.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


def _read(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    out = capsys.readouterr().out
    assert out.endswith("\n")
    return [json.loads(line) for line in out.splitlines()]


def test_a_gated_line_carries_what_the_runbook_greps_and_jq_reads(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO")
    store = uuid.uuid4()
    structlog.get_logger("consumers.results").info(
        "Gating check blocked",
        correlationId="c-1",
        missingStep="payments",
        missingSteps=["payments"],
        storeId=store,
    )
    (line,) = _read(capsys)
    assert line["message"] == "Gating check blocked"
    assert line["missingStep"] == "payments"
    assert line["missingSteps"] == ["payments"]
    assert line["correlationId"] == "c-1"
    assert line["service"] == SERVICE
    assert line["level"] == "info"
    assert line["storeId"] == str(store)
    assert datetime.fromisoformat(str(line["timestamp"])).tzinfo is not None


def test_a_value_the_fast_renderer_refuses_still_gets_its_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO")
    log = structlog.get_logger("consumers.batch")
    log.warning("Retry attempt", offset=2**70, at=datetime(2026, 12, 1, tzinfo=UTC), odd=object())
    log.error("Failed to publish store", error="retries exhausted")
    first, second = _read(capsys)
    assert first["offset"] == 2**70
    assert first["message"] == "Retry attempt"
    assert str(first["odd"]).startswith("<object object")
    assert second == {**second, "message": "Failed to publish store", "level": "error"}


def test_a_client_librarys_line_is_json_too(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO")
    configure_logging("INFO")
    logging.getLogger("aiokafka.consumer").warning("Heartbeat failed: %s", "rebalancing")
    (line,) = _read(capsys)
    assert line["message"] == "Heartbeat failed: rebalancing"
    assert line["level"] == "warning"
    assert line["service"] == SERVICE
