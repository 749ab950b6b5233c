"""kube-apiserver restarted while the sidecar writes (an upgrade, a control plane's rolling
restart), and a RoleBinding seen only after the sidecar started: nothing is dropped.

A restarting apiserver refuses connections, may answer `503 apiserver is shutting down` with
Retry-After (client-go's REST client waits and tries again), and for its first seconds answers
403 to what RBAC allows, until its RBAC caches are filled (up to 3 s on these 2 shared cores,
seen after every restart). The sidecar runs with a token of the ServiceAccount manifests/
sidecar-rbac creates, so RBAC decides every write, as in a cluster. Before, those 403s were
final: Events dropped as `forbidden`. Now a 403 within `KubeSettings.forbidden_grace` (30 s) of
the API being out of reach or of the start is tried again, counted in
`events_delayed_total{cause="forbidden_transient"}`; a lasting 403 is still `forbidden`
(`test_permissions.py`).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from tests.controlplane import ControlPlane
from tests.daemon_support import Sidecar, wait_for
from tests.faults.support import (
    Stream,
    drops,
    fault_args,
    install_rbac,
    may_create_events,
    service_account_kubeconfig,
    settle,
)

RESTARTS = 4
#: Objects written about: each object's writes are chained, so more objects make more writes
#: retry at once, at jittered moments (the first retry a random part of the 2 s interval).
OBJECTS = 16
#: Seconds between lines while the apiserver restarts.
LINE_INTERVAL = 0.05
_CAUSES = ("unreachable", "unavailable", "retry_after", "forbidden_transient")


def _delays(process: Sidecar) -> dict[str, int]:
    return {
        cause: int(process.metric("event_sidecar_events_delayed_total", cause=cause))
        for cause in _CAUSES
    }


def _sidecar_args(plane: ControlPlane, namespace: str, tmp_path: Path) -> list[str]:
    kubeconfig = service_account_kubeconfig(plane, namespace, tmp_path)
    return fault_args(plane, tmp_path, "--kubeconfig", str(kubeconfig), "--writes", "16")


def test_apiserver_restarts_during_writes_drop_nothing(
    outage_plane: ControlPlane, outage_namespace: str, tmp_path: Path
) -> None:
    install_rbac(outage_plane, outage_namespace, tmp_path)
    stream = Stream(tmp_path / "controller.log", outage_namespace, objects=OBJECTS)
    stream.write(40)
    process = Sidecar(_sidecar_args(outage_plane, outage_namespace, tmp_path), tmp_path)
    try:
        process.start()
        settle(outage_plane, stream, lambda: drops(process))

        # Lines keep coming while the apiserver restarts. The restarts stay on this thread: the
        # apiserver is killed when the thread that started it ends (see `ControlPlane`).
        writing = threading.Event()
        writing.set()

        def write_lines() -> None:
            while writing.is_set():
                stream.write(1)
                time.sleep(LINE_INTERVAL)

        writer = threading.Thread(target=write_lines, name="controller")
        writer.start()
        try:
            for _ in range(RESTARTS):
                time.sleep(2.0)
                outage_plane.restart_apiserver()
            time.sleep(2.0)
        finally:
            writing.clear()
            writer.join()
        result = settle(outage_plane, stream, lambda: drops(process), timeout=120)
        delays = _delays(process)
        print(f"{RESTARTS} apiserver restarts during writes: {result}; retries: {delays}")
        assert result.lost == 0, f"{result}; retries: {delays}"
        assert result.doubled == 0, str(result)
        assert delays["unreachable"] > 0, str(delays)  # the restarts were met, and counted
        assert process.terminate(timeout=20) == 0
    finally:
        process.close()


def test_a_rolebinding_seen_after_the_sidecar_started_drops_nothing(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    """The sidecar starts before its RoleBinding is in force (applied with it, or an apiserver's
    RBAC caches behind): its first writes are answered 403 and must be tried again."""
    overlay = install_rbac(control_plane, namespace, tmp_path)
    control_plane.kubectl("delete", "rolebinding", "event-sidecar-events", "-n", namespace)
    wait_for(lambda: not may_create_events(control_plane, namespace), "RBAC to refuse")
    stream = Stream(tmp_path / "controller.log", namespace)
    stream.write(20)
    process = Sidecar(_sidecar_args(control_plane, namespace, tmp_path), tmp_path)
    try:
        process.start()
        refused = "event_sidecar_api_request_duration_seconds_count"
        wait_for(
            lambda: process.metric(refused, verb="create", result="403") >= 4,
            "the first writes refused",
        )
        control_plane.kubectl("apply", "-k", str(overlay))
        result = settle(control_plane, stream, lambda: drops(process), timeout=60)
        delays = _delays(process)
        print(f"RoleBinding applied after the start: {result}; retries: {delays}")
        assert result.stored == 20, f"{result}; retries: {delays}"
        assert delays["forbidden_transient"] >= 4, str(delays)
        assert result.doubled == 0, str(result)
        assert process.terminate(timeout=20) == 0
    finally:
        process.close()
