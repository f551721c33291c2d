"""ops/prometheus/alerts.yml: valid for promtool, its unit tests pass, and it holds the same
five rules (names, actions, durations) as the rates stream. promtool must be installed
(Debian's `prometheus` package): a missing promtool fails these tests, it never skips them."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from schemas.settings import Settings
from streams.alerts import Measure, rules_from_settings

RULES_DIR = Path(__file__).resolve().parents[2] / "ops" / "prometheus"
DURATION = re.compile(r"^(\d+)([smh])$")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail(
            "promtool not found: install Debian's `prometheus` package "
            "(apt-get install -y prometheus)",
            pytrace=False,
        )
    return found


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], cwd=RULES_DIR, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_alert_rules_pass_promtool_check() -> None:
    result = run_promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alert_rules_pass_their_promtool_unit_tests() -> None:
    result = run_promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_scrape_config_passes_promtool_check() -> None:
    result = run_promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_and_the_stream_alert_on_the_same_rules() -> None:
    document = yaml.safe_load((RULES_DIR / "alerts.yml").read_text(encoding="utf-8"))
    alerting = {
        rule["alert"]: rule
        for group in document["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    stream = {rule.name: rule for rule in rules_from_settings(Settings(_env_file=None))}
    assert set(alerting) == set(stream)
    for name, rule in alerting.items():
        amount, unit = DURATION.match(rule["for"]).groups()  # type: ignore[union-attr]
        assert int(amount) * UNIT_SECONDS[unit] == stream[name].for_seconds, name
        assert rule["labels"]["action"] == stream[name].action.value, name
        threshold = float(re.search(r"> ([0-9.]+)", rule["expr"]).group(1))  # type: ignore[union-attr]
        # The stream compares latency_ms; Prometheus the histogram's seconds.
        scale = 1000.0 if stream[name].measure is Measure.P95_LATENCY_MS else 1.0
        assert threshold * scale == pytest.approx(stream[name].threshold), name
