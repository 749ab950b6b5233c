"""`event-sidecar run --events-api events.k8s.io/v1` as a real process against the real control
plane: repeats of one Event become a series that kubectl counts, the info metric names the API,
SIGTERM writes the series count still only in memory, `auto` picks events.k8s.io/v1 when the
kubeconfig may write there, and `replay` into the cluster writes what `run` writes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.controlplane import ControlPlane
from tests.daemon_support import append, run_args, sidecar, wait_for
from tests.kube_support import _wide_events

#: Long enough that no heartbeat closes the series while the test runs: only SIGTERM's flush
#: can write the counts kept in memory.
SERIES_FINISH = "600"


def _failure_line(namespace: str, name: str) -> bytes:
    """A line the `failed` rule matches; repeated, it asks for the same Event each time."""
    document = {
        "level": "error",
        "ts": time.time(),
        "msg": "Update failed",
        "namespace": namespace,
        "name": name,
        "error": "quota exceeded",
    }
    return json.dumps(document).encode() + b"\n"


def _modern_events(control_plane: ControlPlane, namespace: str) -> list[dict[str, Any]]:
    out = control_plane.kubectl(
        "get", "events.v1.events.k8s.io", "-n", namespace, "-o", "json"
    ).stdout
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


def _series_count(control_plane: ControlPlane, namespace: str) -> int | None:
    """The one stored Event's series.count (1 when it has no series yet), None when none."""
    items = _modern_events(control_plane, namespace)
    if len(items) != 1:
        return None
    return int((items[0].get("series") or {"count": 1})["count"])


def test_repeats_become_a_series_and_sigterm_writes_its_count(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "controller.log"
    repeats = 7
    args = run_args(
        control_plane,
        tmp_path,
        "--file",
        str(logs / "*.log"),
        "--events-api",
        "events.k8s.io/v1",
        "--series-finish",
        SERIES_FINISH,
    )
    with sidecar(args, tmp_path) as process:
        assert process.metric("event_sidecar_events_api_info", api="events.k8s.io/v1") == 1
        assert process.metric("event_sidecar_events_api_info", api="v1") == 0
        append(log, [_failure_line(namespace, "obj-0") for _ in range(repeats)])
        wait_for(
            lambda: process.metric("event_sidecar_lines_read_total", source="file") == repeats,
            f"{repeats} lines read",
        )
        # The second occurrence PATCHes the series in; later ones stay in memory.
        wait_for(lambda: _series_count(control_plane, namespace) == 2, "a series of 2")
        [row] = _wide_events(control_plane, namespace)
        assert (row["REASON"], row["OBJECT"], row["COUNT"]) == (
            "UpdateFailed",
            "configmap/obj-0",
            "2",
        )
        assert row["SOURCE"] == "test-controller, test-controller-sidecar-pod-0"
        assert process.terminate() == 0
    [stored] = _modern_events(control_plane, namespace)
    assert stored["series"]["count"] == repeats
    assert stored["note"] == "quota exceeded"
    assert stored["regarding"]["name"] == "obj-0"
    [row] = _wide_events(control_plane, namespace)
    assert row["COUNT"] == str(repeats)
    assert any(
        record["msg"] == "writing the series counts only in memory" and record["series"] == 1
        for record in process.logs()
    )


def test_auto_picks_events_k8s_io_v1_with_the_admin_kubeconfig(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    args = run_args(control_plane, tmp_path, "--file", str(logs / "*.log"), "--events-api", "auto")
    with sidecar(args, tmp_path) as process:
        assert process.metric("event_sidecar_events_api_info", api="events.k8s.io/v1") == 1
        assert process.metric("event_sidecar_events_api_info", api="v1") == 0
        append(logs / "controller.log", [_failure_line(namespace, "obj-0")])
        wait_for(lambda: _series_count(control_plane, namespace) == 1, "one modern Event")
        [stored] = _modern_events(control_plane, namespace)
        assert stored["reportingController"] == "test-controller"
        assert process.terminate() == 0
    assert any(record.get("events_api") == "events.k8s.io/v1" for record in process.logs()), (
        process.stderr()
    )


def _stored(control_plane: ControlPlane, namespace: str) -> list[tuple[Any, ...]]:
    """What matters of each stored Event: name, reason, object, note, times and series count."""
    return sorted(
        (
            e["metadata"]["name"],
            e["reason"],
            e["regarding"]["name"],
            e["note"],
            e["eventTime"],
            (e.get("series") or {}).get("count"),
            (e.get("series") or {}).get("lastObservedTime"),
        )
        for e in _modern_events(control_plane, namespace)
    )


def test_replay_writes_the_events_run_would(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    """`replay --kubeconfig --events-api events.k8s.io/v1` stores the Events (names, series
    counts, times) that `run` in that mode stores for the same log: replayed twice, the second
    finds them all written; `run` over the same log afterwards too."""
    t0 = float(int(time.time()) - 1200)
    rows = [
        *[(t0 + i, "obj-0") for i in range(5)],  # a series of 5
        (t0 + 5, "obj-1"),  # one occurrence, no series
        (t0 + 6, "obj-2"),
        (t0 + 6 + 400, "obj-2"),  # 400 s later: its series ended, a new Event
    ]
    lines = [
        json.dumps(
            {
                "level": "error",
                "ts": ts,
                "msg": "Update failed",
                "namespace": namespace,
                "name": name,
                "error": f"quota exceeded at {int(ts - t0)}",
            }
        ).encode()
        + b"\n"
        for ts, name in rows
    ]
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "controller.log"
    log.write_bytes(b"".join(lines))
    args = run_args(control_plane, tmp_path, "--events-api", "events.k8s.io/v1")
    replay = [
        sys.executable,
        "-m",
        "sidecar",
        "replay",
        str(log),
        "--host",
        "sidecar-pod-0",
        "--summary",
        "json",
        # `run`'s arguments less the file source's.
        *[a for a in args if a not in ("--poll-interval", "0.1", "--rotate-wait", "1")],
    ]

    def replayed() -> dict[str, Any]:
        done = subprocess.run(replay, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        summary: dict[str, Any] = json.loads(done.stderr)
        return summary

    first = replayed()
    assert (first["created"], first["patched"], first["series"]) == (4, 1, 3)
    stored = _stored(control_plane, namespace)
    assert sorted((row[2], row[3], row[5]) for row in stored) == sorted(
        [
            ("obj-0", "quota exceeded at 0", 5),
            ("obj-1", "quota exceeded at 5", None),
            ("obj-2", "quota exceeded at 6", None),
            ("obj-2", "quota exceeded at 406", None),
        ]
    )
    second = replayed()
    assert (second["created"], second["already_written"], second["dropped"]) == (0, 4, {})
    assert _stored(control_plane, namespace) == stored

    with sidecar([*args, "--file", str(logs / "*.log")], tmp_path) as process:
        wait_for(
            lambda: process.metric("event_sidecar_events_already_written_total") == 4,
            "every create found written",
        )
        assert process.metric("event_sidecar_events_emitted_total", write="create") == 0
        assert process.metric("event_sidecar_events_dropped_total") == 0
        assert process.terminate() == 0
    assert _stored(control_plane, namespace) == stored
