"""`event-sidecar replay --kubeconfig` writes real Events that kubectl shows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from kubernetes import client

from tests.controlplane import ControlPlane

RULES = """\
component: legacy-controller
rules:
  - name: phase
    match: {message: Observed phase}
    object: {apiVersion: v1, kind: ConfigMap, ref: ConfigMap}
    transition: {state: "{phase}", first: skip}
    reason: PhaseChanged
    message: "phase {from} -> {to}"
  - name: failed
    match: {message: Sync failed, level: error}
    object: {apiVersion: v1, kind: ConfigMap, ref: ConfigMap}
    type: Warning
    reason: SyncFailed
    message: "{error}"
"""


def line(namespace: str, message: str, **fields: str) -> str:
    body = {
        "level": fields.pop("level", "info"),
        "ts": fields.pop("ts", "2026-11-26T10:00:00Z"),
        "msg": message,
        "ConfigMap": {"name": "settings", "namespace": namespace},
        **fields,
    }
    return json.dumps(body)


def replay(
    log: Path, rules: Path, control_plane: ControlPlane, *options: str
) -> subprocess.CompletedProcess[str]:
    """`event-sidecar replay LOG --rules RULES --kubeconfig K OPTIONS...`, output captured."""
    command = ["replay", str(log), "--rules", str(rules)]
    command += ["--kubeconfig", str(control_plane.kubeconfig), *options]
    return subprocess.run(
        [sys.executable, "-m", "sidecar", *command], capture_output=True, text=True, check=False
    )


def test_replay_writes_events_to_the_cluster(
    control_plane: ControlPlane,
    kube_api_client: client.ApiClient,
    namespace: str,
    tmp_path: Path,
) -> None:
    client.CoreV1Api(kube_api_client).create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="settings"), data={"a": "b"}),
    )
    log = tmp_path / "controller.log"
    lines = [
        line(namespace, "Observed phase", phase="Pending"),
        line(namespace, "Observed phase", phase="Pending"),
        line(namespace, "Observed phase", phase="Ready"),
        *[line(namespace, "Sync failed", level="error", error="timeout talking to upstream")] * 3,
    ]
    log.write_text("\n".join(lines) + "\n")
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    done = replay(log, rules, control_plane, "--host", "legacy-0")
    assert done.returncode == 0, done.stderr
    assert "events: 4 (2 created, 2 patched)" in done.stderr
    assert done.stdout == ""  # written to the cluster, not printed

    shown = control_plane.kubectl("get", "events", "-n", namespace, "-o", "wide").stdout
    rows = [row.split() for row in shown.splitlines()[1:]]
    by_reason = {row[2]: row for row in rows}
    assert set(by_reason) == {"PhaseChanged", "SyncFailed"}
    assert by_reason["PhaseChanged"][1] == "Normal"
    assert by_reason["PhaseChanged"][3] == "configmap/settings"
    assert "phase Pending -> Ready" in " ".join(by_reason["PhaseChanged"])
    assert by_reason["SyncFailed"][1] == "Warning"
    stored = json.loads(
        control_plane.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
    )["items"]
    failed = next(item for item in stored if item["reason"] == "SyncFailed")
    assert failed["count"] == 3
    assert failed["source"] == {"component": "legacy-controller", "host": "legacy-0"}
    uid = client.CoreV1Api(kube_api_client).read_namespaced_config_map("settings", namespace)
    assert uid.metadata is not None
    assert failed["involvedObject"]["uid"] == uid.metadata.uid


def test_replay_without_a_usable_kubeconfig_fails_clearly(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sidecar",
            "replay",
            "-",
            "--rules",
            str(rules),
            "--kubeconfig",
            str(tmp_path / "nope"),
        ],
        input="",
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: ")
    assert "nope" in done.stderr


def test_replaying_a_log_twice_does_not_double_its_events(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    log = tmp_path / "controller.log"
    failures = [
        line(namespace, "Sync failed", level="error", error="timeout talking to upstream", ts=ts)
        for ts in ("2026-11-26T10:00:01Z", "2026-11-26T10:00:02Z", "2026-11-26T10:00:03Z")
    ]
    phases = [
        line(namespace, "Observed phase", phase=phase, ts=f"2026-11-26T10:01:0{i}Z")
        for i, phase in enumerate(["Pending", "Ready", "Failed", "Ready"])
    ]
    log.write_text("\n".join([*failures, *phases]) + "\n")
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)

    def replay_into_the_cluster() -> str:
        done = replay(log, rules, control_plane, "--summary", "json")
        assert done.returncode == 0, done.stderr
        return done.stderr

    def stored() -> list[tuple[str, str, int, str, str]]:
        items = json.loads(
            control_plane.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
        )["items"]
        return sorted(
            (
                item["reason"],
                item["message"],
                item["count"],
                item["firstTimestamp"],
                item["lastTimestamp"],
            )
            for item in items
        )

    first = json.loads(replay_into_the_cluster())
    assert (first["created"], first["patched"], first["already_written"]) == (4, 2, 0)
    # The Events carry their lines' times, not the time of the replay.
    once = stored()
    assert once == [
        (
            "PhaseChanged",
            "phase Failed -> Ready",
            1,
            "2026-11-26T10:01:03Z",
            "2026-11-26T10:01:03Z",
        ),
        (
            "PhaseChanged",
            "phase Pending -> Ready",
            1,
            "2026-11-26T10:01:01Z",
            "2026-11-26T10:01:01Z",
        ),
        (
            "PhaseChanged",
            "phase Ready -> Failed",
            1,
            "2026-11-26T10:01:02Z",
            "2026-11-26T10:01:02Z",
        ),
        (
            "SyncFailed",
            "timeout talking to upstream",
            3,
            "2026-11-26T10:00:01Z",
            "2026-11-26T10:00:03Z",
        ),
    ]
    second = json.loads(replay_into_the_cluster())
    # Every create of the second replay finds its Event (409): written before, not dropped.
    assert (second["created"], second["patched"], second["already_written"]) == (0, 2, 4)
    assert second["dropped"] == {}
    assert stored() == once
