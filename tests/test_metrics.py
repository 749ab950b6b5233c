"""The metrics only transitions give, their cardinality guard, and a lean /metrics."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import TypeVar

from prometheus_client import CollectorRegistry, generate_latest

from sidecar.core.pipeline import LinePipeline, Processor
from sidecar.core.rules import compile_rules, parse_rules
from sidecar.core.transitions import TransitionTracker
from sidecar.runtime.exposition import show_created_series
from sidecar.runtime.metrics import Metrics
from tests.daemon_support import RULES, phase_line

_T = TypeVar("_T")


def feed(metrics: Metrics, tracker: TransitionTracker, lines: list[bytes]) -> None:
    rules = compile_rules(parse_rules(RULES, "rules.yaml"))
    pipeline = LinePipeline(Processor(rules, tracker), year=None, max_line_bytes=1 << 16)
    metrics.count_lines("file", pipeline.feed(b"".join(lines)).counts)


def test_transition_durations_come_from_the_lines_times() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    feed(
        metrics,
        TransitionTracker(),
        [
            phase_line("ns", "a", "Pending", 1000.0),
            phase_line("ns", "a", "Pending", 1030.0),
            phase_line("ns", "a", "Ready", 1090.0),
            phase_line("ns", "b", "Pending", 1000.0),
            phase_line("ns", "b", "Ready", 1002.0),
        ],
    )
    labels = {"rule": "phase", "from": "Pending", "to": "Ready"}
    get = registry.get_sample_value
    assert get("event_sidecar_transition_duration_seconds_count", labels) == 2
    assert get("event_sidecar_transition_duration_seconds_sum", labels) == 92.0
    assert get("event_sidecar_transition_duration_seconds_bucket", {**labels, "le": "5.0"}) == 1
    # The first observation (none -> Pending) has no duration: the object's past is unknown.
    assert (
        get("event_sidecar_transition_duration_seconds_count", {**labels, "from": "none"}) is None
    )


def test_states_past_the_limit_are_other_and_counted() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry, max_state_values=2)
    feed(
        metrics,
        TransitionTracker(),
        [phase_line("ns", "a", f"S{i}", 1000.0 + i) for i in range(4)],
    )
    get = registry.get_sample_value
    assert get(
        "event_sidecar_transition_duration_seconds_count",
        {"rule": "phase", "from": "S0", "to": "S1"},
    )
    assert get(
        "event_sidecar_transition_duration_seconds_count",
        {"rule": "phase", "from": "other", "to": "other"},
    )
    assert get(
        "event_sidecar_transition_duration_seconds_count",
        {"rule": "phase", "from": "S1", "to": "other"},
    )
    assert get("event_sidecar_state_labels_dropped_total", {"rule": "phase"}) == 2
    names = {
        sample.labels.get("from") for family in registry.collect() for sample in family.samples
    }
    assert "S2" not in names and "S3" not in names


def test_forgotten_states_go_back_through_the_guard() -> None:
    """A rules reload forgets a rule's states: the labels seen before must be admitted afresh
    (and count against the limit again), not reused from a cache past the guard."""
    registry = CollectorRegistry()
    metrics = Metrics(registry, max_state_values=2)
    metrics.observe_durations([("phase", "A", "B", 1.0), ("phase", "A", "B", 2.0)])
    metrics.forget_states(["phase"])
    metrics.observe_durations([("phase", "C", "D", 1.0), ("phase", "A", "B", 3.0)])
    get = registry.get_sample_value
    count = "event_sidecar_transition_duration_seconds_count"
    assert get(count, {"rule": "phase", "from": "A", "to": "B"}) == 2
    assert get(count, {"rule": "phase", "from": "C", "to": "D"}) == 1
    assert get(count, {"rule": "phase", "from": "other", "to": "other"}) == 1
    assert get("event_sidecar_state_labels_dropped_total", {"rule": "phase"}) == 1


def test_objects_in_state_counts_recent_objects_and_the_oldest_age() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    tracker = TransitionTracker()
    feed(
        metrics,
        tracker,
        [
            phase_line("ns", "web-a", "Pending", 1000.0),
            phase_line("ns", "web-b", "Pending", 1500.0),
            phase_line("ns", "web-c", "Ready", 100.0),
        ],
    )
    now = [2000.0]
    metrics.follow_states(tracker, lambda: now[0], ttl=1200.0)
    get = registry.get_sample_value
    pending = {"rule": "phase", "state": "Pending"}
    assert get("event_sidecar_objects_in_state", pending) == 2
    assert get("event_sidecar_state_oldest_seconds", pending) == 1000.0
    # web-c's last line is older than the TTL: it is no longer counted (its state is still kept).
    assert get("event_sidecar_objects_in_state", {"rule": "phase", "state": "Ready"}) is None
    assert len(tracker) == 3
    now[0] = 2300.0
    assert get("event_sidecar_objects_in_state", pending) == 1
    assert b"web-" not in generate_latest(registry)  # never object names


def test_the_census_runs_through_the_trackers_owner() -> None:
    """The daemon counts on its event loop (`census_on`); a loop that does not answer leaves the
    two families empty rather than failing the scrape or showing a stale count."""
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    tracker = TransitionTracker()
    feed(metrics, tracker, [phase_line("ns", "web-a", "Pending", 1000.0)])
    metrics.follow_states(tracker, lambda: 1000.0, ttl=1200.0)
    calls: list[str] = []

    def owner(call: Callable[[], _T]) -> _T | None:
        calls.append("owner")
        return call()

    metrics.census_on(owner)
    pending = {"rule": "phase", "state": "Pending"}
    assert registry.get_sample_value("event_sidecar_objects_in_state", pending) == 1
    assert calls == ["owner"]

    def wedged(call: Callable[[], _T]) -> _T | None:
        return None

    metrics.census_on(wedged)
    assert registry.get_sample_value("event_sidecar_objects_in_state", pending) is None
    assert b"event_sidecar_objects_in_state gauge" in generate_latest(registry)


def test_no_created_series_unless_asked() -> None:
    show_created_series(False)  # what `run` and `webhook` do at start-up
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.events_dropped.labels("queue_full").inc()
    assert b"_created" not in generate_latest(registry)
    show_created_series(True)
    try:
        assert b"event_sidecar_events_dropped_created" in generate_latest(registry)
    finally:
        show_created_series(False)
    assert b"_created" not in generate_latest(registry)


def test_importing_the_metrics_changes_nothing_in_prometheus_client() -> None:
    """The `_created` switch is set by the command at start-up, never as a side effect of an
    import (in a fresh interpreter, since this one's switch has been set by other tests)."""
    probe = (
        "import prometheus_client.metrics as m; "
        "import sidecar.runtime.exposition, sidecar.runtime.metrics, sidecar.inject.webhook, "
        "sidecar.runtime.status_routes; print(m._use_created)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "True", done.stderr
