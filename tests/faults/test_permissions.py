"""The API says no: RBAC removed and restored, the namespace deleted. Every refusal is counted.

The sidecar runs with a token of the ServiceAccount that manifests/sidecar-rbac creates, so
removing that RoleBinding is exactly what an operator's mistake would do.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from tests.controlplane import ControlPlane
from tests.daemon_support import Sidecar, wait_for
from tests.faults.support import (
    Stream,
    drops,
    fault_args,
    healthy,
    install_rbac,
    may_create_events,
    service_account_kubeconfig,
    settle,
)

BATCH = 20


def test_rbac_removed_then_restored(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    overlay = install_rbac(control_plane, namespace, tmp_path)
    kubeconfig = service_account_kubeconfig(control_plane, namespace, tmp_path)
    stream = Stream(tmp_path / "controller.log", namespace)
    stream.write(BATCH)
    args = fault_args(control_plane, tmp_path, "--kubeconfig", str(kubeconfig))
    process = Sidecar(args, tmp_path)
    try:
        process.start()
        settle(control_plane, stream, lambda: drops(process))

        control_plane.kubectl("delete", "rolebinding", "event-sidecar-events", "-n", namespace)
        wait_for(lambda: not may_create_events(control_plane, namespace), "RBAC to refuse")
        stream.write(BATCH)
        removed = settle(control_plane, stream, lambda: drops(process))
        assert removed.drops.get("forbidden") == BATCH, str(removed)
        assert healthy(process)

        control_plane.kubectl("apply", "-k", str(overlay))
        wait_for(lambda: may_create_events(control_plane, namespace), "RBAC to allow")
        stream.write(BATCH)
        result = settle(control_plane, stream, lambda: drops(process))
        assert result.stored == 2 * BATCH, str(result)
        assert healthy(process)
        print(f"RBAC removed and restored: {result}")
        assert process.terminate(timeout=20) == 0
    finally:
        process.close()


def test_namespace_deleted(control_plane: ControlPlane, tmp_path: Path) -> None:
    # Not the `namespace` fixture: it deletes its namespace at the end itself.
    namespace = f"doomed-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", namespace)
    stream = Stream(tmp_path / "controller.log", namespace)
    stream.write(BATCH)
    process = Sidecar(fault_args(control_plane, tmp_path), tmp_path)
    try:
        process.start()
        settle(control_plane, stream, lambda: drops(process))
        # Without a controller-manager the namespace stays Terminating: creates are refused.
        control_plane.kubectl("delete", "namespace", namespace, "--wait=false")
        stream.write(BATCH)
        result = settle(control_plane, stream, lambda: drops(process))
        assert result.drops.get("namespace_terminating") == BATCH, str(result)
        assert healthy(process)
        print(f"namespace deleted: {result}")
        assert process.terminate(timeout=20) == 0
    finally:
        process.close()
