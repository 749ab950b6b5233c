"""Rules hot reload end to end: a ConfigMap updated on the real apiserver, projected into a folder
as the kubelet's atomic writer would (the test control plane has no kubelet), under a running
`event-sidecar run` process that writes its Events to the same apiserver."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from tests.controlplane import ControlPlane
from tests.daemon_support import (
    RULES,
    Sidecar,
    event_messages,
    http_get,
    phase_line,
    run_args,
    wait_for,
)
from tests.test_reload import INVALID, RENAMED, project


def apply_rules(control_plane: ControlPlane, namespace: str, text: str) -> None:
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "event-rules", "namespace": namespace},
        "data": {"rules.yaml": text},
    }
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(configmap))


def sync_volume(control_plane: ControlPlane, namespace: str, volume: Path) -> None:
    """The kubelet's part: fetch the ConfigMap's data and project it with the atomic writer."""
    done = control_plane.kubectl("get", "configmap", "event-rules", "-n", namespace, "-o", "json")
    project(volume, json.loads(done.stdout)["data"])


def test_a_configmap_update_on_the_apiserver_reaches_the_running_sidecar(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    volume, log = tmp_path / "rules", tmp_path / "app.log"
    log.write_bytes(b"")
    apply_rules(control_plane, namespace, RULES)
    sync_volume(control_plane, namespace, volume)
    args = run_args(
        control_plane, tmp_path, "--file", str(log), "--rules", str(volume / "rules.yaml")
    )
    process = Sidecar(args, tmp_path).start()
    try:

        def write(phase: str) -> None:
            with log.open("ab") as out:
                out.write(phase_line(namespace, "obj-0", phase))

        def has(message: str) -> bool:
            return ("obj-0", message) in event_messages(control_plane, namespace)

        def reloads(result: str) -> float:
            return process.metric("event_sidecar_rules_reloads_total", result=result)

        write("A")
        wait_for(lambda: has("phase none -> A"), "the first Event")

        apply_rules(control_plane, namespace, RENAMED.replace("phase {from}", "moved {from}"))
        sync_volume(control_plane, namespace, volume)
        wait_for(lambda: reloads("success") == 1, "the reload")
        write("B")
        wait_for(lambda: has("moved A -> B"), "an Event of the new rules, from the kept state")

        apply_rules(control_plane, namespace, INVALID)
        sync_volume(control_plane, namespace, volume)
        wait_for(lambda: reloads("failure") == 1, "the invalid rules to be refused")
        write("C")
        wait_for(lambda: has("moved B -> C"), "the previous rules to keep running")
        refusals = [r for r in process.logs() if str(r["msg"]).startswith("rules not reloaded")]
        assert refusals, process.stderr()
        # As `check` says it: file, line and rule (the unknown key `matches`, on line 4).
        assert any(
            (r["file"], r["line"], r["rule"]) == (str(volume / "rules.yaml"), 4, "phase")
            and f"{volume / 'rules.yaml'}:4: rule phase: " in r["msg"]
            for r in refusals
        ), refusals

        assert process.process is not None
        process.process.send_signal(signal.SIGHUP)
        wait_for(lambda: reloads("failure") == 2, "SIGHUP to check again (still invalid)")
        _, text = http_get(process.url("/metrics"))
        assert "_created" not in text
        assert process.terminate() == 0
    finally:
        process.close()
