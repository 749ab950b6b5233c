"""The dashboard and alerts in manifests/monitoring/: valid for promtool, unit-tested, and naming
only metrics the code exports (derived from the metric classes, not from a hand-written list)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml
from prometheus_client import CollectorRegistry

from sidecar.inject.webhook import WebhookMetrics
from sidecar.runtime.metrics import Metrics
from tests.controlplane import REPO_ROOT

MONITORING = REPO_ROOT / "manifests" / "monitoring"
RULES = MONITORING / "alerts.rules.yaml"
RULES_TESTS = REPO_ROOT / "tests" / "promtool" / "alerts.test.yaml"
DASHBOARD = MONITORING / "dashboard.json"
_METRIC = re.compile(r"\b(event_sidecar_[a-z0-9_]+)")
_SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}


def exported_series() -> set[str]:
    """Every series name the sidecar and the webhook can expose, from fresh registries."""
    registry = CollectorRegistry()
    Metrics(registry)
    WebhookMetrics(registry)
    return {
        family.name + suffix for family in registry.collect() for suffix in _SUFFIXES[family.type]
    }


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool (Debian's prometheus package) is required: make system-deps"
    return path


def rule_expressions() -> list[str]:
    return [r["expr"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def dashboard_expressions() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [t["expr"] for p in panels for t in p["targets"]]


def test_exported_series_are_derived_from_the_code() -> None:
    series = exported_series()
    assert "event_sidecar_events_dropped_total" in series
    assert "event_sidecar_api_request_duration_seconds_bucket" in series
    assert "event_sidecar_inject_injected_total" in series
    assert "event_sidecar_events_dropped" not in series  # counters are exposed with _total


def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rule_expressions())} rules found" in result.stdout


def test_every_alert_passes_its_promtool_unit_tests() -> None:
    result = subprocess.run(
        [promtool(), "test", "rules", RULES_TESTS.name],
        cwd=RULES_TESTS.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", RULES_TESTS.read_text()))
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    assert tested == alerts


def test_the_prometheus_rule_carries_the_same_groups() -> None:
    rule = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
def test_queries_name_only_exported_metrics(source: str) -> None:
    expressions = rule_expressions() if source == "alerts" else dashboard_expressions()
    named = {name for e in expressions for name in _METRIC.findall(e)}
    assert named, "no query names a metric"
    assert named <= exported_series(), sorted(named - exported_series())


def test_the_dashboard_covers_each_area() -> None:
    named = {name for e in dashboard_expressions() for name in _METRIC.findall(e)}
    for wanted in (
        "event_sidecar_events_emitted_total",
        "event_sidecar_events_dropped_total",
        "event_sidecar_lines_read_total",
        "event_sidecar_lines_undecodable_total",
        "event_sidecar_source_lag_bytes",
        "event_sidecar_queue_depth",
        "event_sidecar_api_request_duration_seconds_bucket",
        "event_sidecar_inject_injected_total",
        "event_sidecar_webhook_errors_total",
        "event_sidecar_rules_reloads_total",
        "event_sidecar_objects_in_state",
        "event_sidecar_lines_incomplete_total",
        "event_sidecar_lines_declared_format_total",
        "event_sidecar_reasons_replaced_total",
    ):
        assert wanted in named


def test_a_misspelt_metric_would_be_caught() -> None:
    """The check itself: a query naming a metric the code does not export is reported."""
    named = set(_METRIC.findall("rate(event_sidecar_lines_red_total[5m])"))
    assert named - exported_series() == {"event_sidecar_lines_red_total"}
