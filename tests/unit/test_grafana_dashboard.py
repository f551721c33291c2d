"""ops/grafana: every panel's query is PromQL that promtool accepts, naming only metrics the
consumer and the rates stream export; the dashboard covers what on-call watches; compose
provisions it. promtool (Debian's `prometheus` package) must be installed: missing, it fails."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from consumers.metrics import ConsumerMetrics
from streams.metrics import StreamMetrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "ops" / "grafana" / "dashboards" / "store-publish.json"
PROVISIONING = ROOT / "ops" / "grafana" / "provisioning"
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
}
# Words of PromQL that look like names: functions (always followed by "("), aggregation
# modifiers and set operators.
KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
}


def exported_metrics() -> set[str]:
    registry = CollectorRegistry()
    ConsumerMetrics.create(registry)
    StreamMetrics.create(registry)
    names: set[str] = set()
    for family in registry.collect():
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
    return names


def dashboard() -> dict[str, Any]:
    loaded = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def queries() -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in dashboard()["panels"]
        for target in panel["targets"]
    ]


def metric_names(expr: str) -> set[str]:
    """The series names an expression selects: strings, label matchers, ranges and grouping
    labels removed, functions (a name before "(") and keywords left out."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    bare = re.sub(r"\{[^}]*\}", "", bare)
    bare = re.sub(r"\[[^\]]*\]", "", bare)
    bare = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", bare)
    found = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", bare):
        name, rest = match.group(0), bare[match.end() :].lstrip()
        if rest.startswith("(") or name in KEYWORDS:
            continue
        found.add(name)
    return found


def test_every_panel_query_is_valid_promql(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found: apt-get install -y prometheus", pytrace=False)
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:panel_{n}", "expr": expr}
                    for n, (_title, expr) in enumerate(queries())
                ],
            }
        ]
    }
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    checked = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    print(checked.stdout, checked.stderr)
    assert checked.returncode == 0, checked.stderr or checked.stdout
    assert f"{len(queries())} rules found" in checked.stdout


def test_the_name_reader_finds_series_and_skips_functions_labels_and_keywords() -> None:
    expr = 'sum by (le) (rate(a_total{status="x{y}"}[5m])) / on() b and scalar(c) > 0.5'
    assert metric_names(expr) == {"a_total", "b", "c"}


def test_every_panel_names_only_metrics_the_code_exports() -> None:
    exported = exported_metrics()
    assert "store_publish_outcomes_total" in exported
    assert "store_publish_end_to_end_latency_seconds_bucket" in exported
    for title, expr in queries():
        names = metric_names(expr)
        assert names, f"{title}: {expr} selects no metric"
        assert names <= exported, f"{title}: {sorted(names - exported)} not exported"


def test_the_dashboard_shows_what_on_call_watches() -> None:
    used = set().union(*(metric_names(expr) for _title, expr in queries()))
    wanted = {
        "store_publish_outcomes_total",
        "store_publish_retried_outcomes_total",
        "store_publish_end_to_end_latency_seconds_bucket",
        "store_publish_consumer_lag_records",
        "store_publish_stream_outcomes_total",
        "store_publish_paused",
        "store_publish_dead_letters_total",
        "store_publish_alert_firing",
        "store_publish_rate_error_ratio",
        "store_publish_rate_retry_ratio",
        "store_publish_rate_gating_block_ratio",
    }
    assert wanted <= used, sorted(wanted - used)
    thresholds = {
        panel["title"]: [
            step["value"]
            for step in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
            if step["value"] is not None
        ]
        for panel in dashboard()["panels"]
    }
    # The contract's thresholds, drawn as lines on the rate panels.
    assert thresholds["Error rate (failed / all)"] == [0.05, 0.10]
    assert thresholds["Retry rate (attempts > 1 / all)"] == [0.20]
    assert thresholds["Gating block rate (gated / all)"] == [0.50]
    assert thresholds["p95 latency, request to outcome"] == [10]
    ids = [panel["id"] for panel in dashboard()["panels"]]
    assert len(ids) == len(set(ids))


def test_compose_provisions_grafana_with_the_dashboard_and_prometheus() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    grafana = compose["services"]["grafana"]
    assert "prometheus" in grafana["depends_on"]
    mounts = [volume.split(":") for volume in grafana["volumes"] if volume.startswith("./")]
    for source, _target, *_mode in mounts:
        assert (ROOT / source).exists(), source
    targets = {target for _source, target, *_mode in mounts}
    assert "/etc/grafana/provisioning/datasources" in targets
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "store-publish.yml").read_text())
    assert provider["providers"][0]["options"]["path"] in targets
    source = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    datasource = source["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090"
    panel_sources = {p["datasource"]["uid"] for p in dashboard()["panels"]}
    assert panel_sources == {datasource["uid"]}
