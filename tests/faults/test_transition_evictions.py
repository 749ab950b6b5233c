"""Transition state past its bound: the forgotten objects are counted, and the bound is a setting.

Past 65,536 objects a real `Pending -> Failed` change produced no Event and was counted only as
"unchanged": nothing said state had been forgotten.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from sidecar.core.pipeline import LinePipeline, Processor
from sidecar.core.rules import load_rules
from sidecar.core.settings import DaemonSettings, FileSettings, HttpSettings, TransitionSettings
from sidecar.core.transitions import DEFAULT_MAX_KEYS, TransitionTracker
from sidecar.daemon.service import Daemon
from sidecar.model import EventSpec
from sidecar.runtime.metrics import Metrics
from sidecar.runtime.sinks import MemorySink

RULES = """\
component: c
rules:
  - name: phase
    match: {message: Observed status}
    object: {apiVersion: v1, kind: ConfigMap, namespace: ns, name: "{name}"}
    transition: {state: "{phase}"}
    reason: PhaseChanged
    message: "phase {from} -> {to}"
"""


def line(name: str, phase: str) -> bytes:
    return json.dumps({"msg": "Observed status", "name": name, "phase": phase}).encode() + b"\n"


def test_evictions_are_counted_and_the_change_they_hide_is_explained(tmp_path: Path) -> None:
    rules_path = tmp_path / "rules.yaml"
    rules_path.write_text(RULES)
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    tracker = TransitionTracker(max_keys=4)
    pipeline = LinePipeline(
        Processor(load_rules(rules_path), tracker), year=2024, max_line_bytes=1 << 20
    )

    def feed(block: bytes) -> list[EventSpec]:
        fed = pipeline.feed(block)
        metrics.count_lines("file", fed.counts)
        return fed.specs

    # Five objects first seen Pending: the oldest (obj-0) is forgotten.
    assert feed(b"".join(line(f"obj-{i}", "Pending") for i in range(5))) == []
    assert registry.get_sample_value("event_sidecar_transition_evictions_total") == 1.0
    # obj-0's real change is a first observation again (first: skip): no Event, but now the
    # eviction counter says why; obj-4's is reported.
    specs = feed(line("obj-0", "Failed") + line("obj-4", "Failed"))
    assert [spec.message for spec in specs] == ["phase Pending -> Failed"]
    assert registry.get_sample_value("event_sidecar_transition_evictions_total") == 2.0


def test_two_pipelines_sharing_a_tracker_count_each_eviction_once(tmp_path: Path) -> None:
    rules_path = tmp_path / "rules.yaml"
    rules_path.write_text(RULES)
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    processor = Processor(load_rules(rules_path), TransitionTracker(max_keys=2))
    files, sockets = (
        LinePipeline(processor, year=2024, max_line_bytes=1 << 20) for _ in ("file", "socket")
    )
    metrics.count_lines("file", files.feed(b"".join(line(f"f-{i}", "A") for i in range(3))).counts)
    metrics.count_lines(
        "socket", sockets.feed(b"".join(line(f"s-{i}", "A") for i in range(3))).counts
    )
    assert registry.get_sample_value("event_sidecar_transition_evictions_total") == 4.0


def test_the_bound_is_a_daemon_setting() -> None:
    assert DaemonSettings().transitions.max_keys == DEFAULT_MAX_KEYS == 65536


async def test_the_daemon_takes_its_bound_from_the_settings(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"".join(line(f"obj-{i}", "Pending") for i in range(5)))
    registry = CollectorRegistry()
    rules_path = tmp_path / "rules.yaml"
    rules_path.write_text(RULES)
    daemon = Daemon(
        load_rules(rules_path),
        MemorySink(),
        DaemonSettings(
            host="pod-0",
            http=HttpSettings(host="127.0.0.1", port=0),
            files=FileSettings(paths=(str(log),), poll_interval=0.05, watch="poll"),
            transitions=TransitionSettings(max_keys=2),
        ),
        Metrics(registry),
    )
    running = asyncio.create_task(daemon.run())
    deadline = time.monotonic() + 15
    while registry.get_sample_value("event_sidecar_transition_evictions_total") != 3.0:
        assert time.monotonic() < deadline, "timed out waiting for 3 evictions"
        await asyncio.sleep(0.05)
    daemon.stop()
    assert await asyncio.wait_for(running, 15) == 0
