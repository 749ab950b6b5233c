"""`kill -9` in a loop while a controller logs: every occurrence counted exactly once.

Repeats of one Event (dedup PATCHes), similar messages folded into one aggregated Event, and
transitions, interleaved in one log. The sidecar is killed at varied moments, often several
times between two checkpoints, and restarted each time; the lines after its last checkpoint are
read again. Whatever the kills, the Events stored in the apiserver must add up exactly: the sum
of their counts for each reason equals the number of lines written for it, and no Event is
doubled. A second checkpoint interval makes each restart re-read more than a second of lines.

The same in events.k8s.io/v1 mode, where a series' later occurrences live in memory until the
heartbeat (every 2 s here, so heartbeats land between the kills too): the checkpoint carries the
series, so the stored series counts add up to the lines written, with no SIGTERM flush needed.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.controlplane import ControlPlane
from tests.daemon_support import Sidecar, append, events, wait_for

RULES = """\
component: test-controller
rules:
  - name: backoff
    match: {message: Back-off restarting}
    object: {apiVersion: v1, kind: ConfigMap, namespace: "{namespace}", name: "{name}"}
    type: Warning
    reason: BackOff
    message: "back-off restarting {name}"
  - name: probe
    match: {message: Probe failed}
    object: {apiVersion: v1, kind: ConfigMap, namespace: "{namespace}", name: "{name}"}
    type: Warning
    reason: Unhealthy
    message: "probe failed: {detail}"
  - name: phase
    match: {message: Observed status}
    object: {apiVersion: v1, kind: ConfigMap, namespace: "{namespace}", name: "{name}"}
    transition: {state: "{phase}", first: emit, initial: none}
    type: Normal
    reason: PhaseChanged
    message: "phase {from} -> {to}"
"""

#: Lines per kind; probes cycle through 14 details, so from the 10th on they are aggregated.
LINES = 120
KILLS = 6  # at least; at most KILLS + 2 while the controller still logs


def controller_log(namespace: str, start: float) -> list[tuple[str, bytes]]:
    """(reason, line) in the order written, each line at its own time."""
    rows: list[tuple[str, bytes]] = []
    for i in range(LINES):
        for reason, message, fields in (
            ("BackOff", "Back-off restarting", {"name": "backoff-0"}),
            ("Unhealthy", "Probe failed", {"name": "probe-0", "detail": f"attempt {i % 14}"}),
            ("PhaseChanged", "Observed status", {"name": f"phase-{i % 3}", "phase": f"P{i}"}),
        ):
            document = {
                "level": "info",
                "ts": start + len(rows) * 0.01,
                "msg": message,
                "namespace": namespace,
                **fields,
            }
            rows.append((reason, json.dumps(document).encode() + b"\n"))
    return rows


MODERN = "events.k8s.io/v1"


def modern_events(control_plane: ControlPlane, namespace: str) -> list[dict[str, Any]]:
    done = control_plane.kubectl("get", "events.v1.events.k8s.io", "-n", namespace, "-o", "json")
    items: list[dict[str, Any]] = json.loads(done.stdout)["items"]
    return items


def counts_by_reason(control_plane: ControlPlane, namespace: str, api: str) -> Counter[str]:
    """Each reason's occurrences as stored: the sum of its Events' counts (core/v1), or of its
    series' counts, 1 for an Event without a series (events.k8s.io/v1)."""
    summed: Counter[str] = Counter()
    if api == MODERN:
        for event in modern_events(control_plane, namespace):
            summed[event["reason"]] += (event.get("series") or {"count": 1})["count"]
        return summed
    for event in events(control_plane, namespace):
        summed[event["reason"]] += event["count"]
    return summed


@pytest.mark.parametrize("api", ["v1", MODERN])
def test_kill_9_in_a_loop_counts_every_occurrence_exactly_once(
    control_plane: ControlPlane, namespace: str, tmp_path: Path, api: str
) -> None:
    log = tmp_path / "controller.log"
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    args = [
        "--rules",
        str(rules),
        "--kubeconfig",
        str(control_plane.kubeconfig),
        "--file",
        str(log),
        "--poll-interval",
        "0.1",
        "--spam-burst",
        "100000",
        "--checkpoint-interval",
        "2",
        "--events-api",
        api,
        "--series-finish",
        "2",
    ]
    rows = controller_log(namespace, time.time() - 60)
    expected = Counter(reason for reason, _ in rows)
    written = threading.Event()

    def write() -> None:
        # About 15 s of logging, so that the kills land in the middle of it.
        for start in range(0, len(rows), 6):
            append(log, [line for _, line in rows[start : start + 6]])
            time.sleep(0.25)
        written.set()

    process = Sidecar(args, tmp_path)
    writer = threading.Thread(target=write)
    pauses = random.Random(9)
    started = time.monotonic()
    kills = 0
    try:
        process.start()
        writer.start()
        # Killed at varied moments, before and after checkpoints, until the log is complete.
        while (not written.is_set() or kills < KILLS) and kills < KILLS + 2:
            time.sleep(pauses.choice([0.2, 0.5, 0.9, 1.4, 2.2]))
            process.kill()
            kills += 1
            process.start()
        writer.join(30)
        assert written.is_set()
        # In events.k8s.io/v1 mode, the heartbeat writes the last counts: no SIGTERM yet.
        wait_for(
            lambda: counts_by_reason(control_plane, namespace, api) == expected,
            f"the counts to add up to {dict(expected)}",
            timeout=30,
        )
        time.sleep(2.5)  # and nothing more arrives late (a heartbeat included)
        assert counts_by_reason(control_plane, namespace, api) == expected
        if api == MODERN:
            # One series per object and reason (the note is not part of a series' key).
            stored = modern_events(control_plane, namespace)
            series = Counter((e["reason"], e["regarding"]["name"]) for e in stored)
            assert series == Counter(
                {("BackOff", "backoff-0"): 1, ("Unhealthy", "probe-0"): 1}
                | {("PhaseChanged", f"phase-{i}"): 1 for i in range(3)}
            )
            (backoff,) = [e for e in stored if e["reason"] == "BackOff"]
            assert backoff["series"]["count"] == LINES
        else:
            stored = events(control_plane, namespace)
            # Not one Event twice: the dedup key (reason, object, message) names one Event each.
            dedup = Counter(
                (e["reason"], e["involvedObject"]["name"], e["message"]) for e in stored
            )
            assert max(dedup.values()) == 1, [key for key, n in dedup.items() if n > 1]
            (backoff,) = [e for e in stored if e["reason"] == "BackOff"]
            assert backoff["count"] == LINES
            assert any(e["message"].startswith("(combined from similar events)") for e in stored)
        assert process.metric("event_sidecar_events_dropped_total") == 0
        assert process.terminate() == 0
    finally:
        written.set()
        process.close()
    assert kills >= KILLS
    assert time.monotonic() - started < 60
