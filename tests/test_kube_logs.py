"""The pod log edge (`sidecar.kube.podlogs`) and its RBAC against the real apiserver.

The stream itself is exercised end to end in tests/test_cluster_e2e.py (a kwok node serves it);
here: what the ServiceAccount of manifests/sidecar-rbac may do, seen through `PodLogClient`
with the account's own token, and the container status it reads.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client

from sidecar.kube import connect_pod_logs
from sidecar.model import ContainerInstance, PodLogError
from tests.controlplane import ControlPlane
from tests.kube_support import install_sidecar_rbac


def _service_account_kubeconfig(
    control_plane: ControlPlane, api: client.ApiClient, namespace: str, tmp_path: Path
) -> Path:
    """manifests/sidecar-rbac through an overlay in `namespace`; a kubeconfig with a token of
    its ServiceAccount from the TokenRequest API as the only credential."""
    token = install_sidecar_rbac(control_plane, api, namespace, tmp_path)
    return control_plane.token_kubeconfig(token, tmp_path / "sa.kubeconfig")


def _pod(api: client.ApiClient, namespace: str, name: str) -> None:
    client.CoreV1Api(api).create_namespaced_pod(
        namespace,
        client.V1Pod(
            metadata=client.V1ObjectMeta(name=name),
            spec=client.V1PodSpec(containers=[client.V1Container(name="manager", image="x")]),
        ),
    )


async def test_pod_log_rbac_is_get_on_pods_and_pods_log_in_its_namespace(
    control_plane: ControlPlane,
    kube_api_client: client.ApiClient,
    namespace: str,
    tmp_path: Path,
) -> None:
    kubeconfig = _service_account_kubeconfig(control_plane, kube_api_client, namespace, tmp_path)

    def can_i(*args: str) -> str:
        out = control_plane.kubectl("auth", "can-i", *args, kubeconfig=kubeconfig, check=False)
        return out.stdout.strip()

    assert can_i("get", "pods", "--subresource=log", "-n", namespace) == "yes"
    assert can_i("get", "pods", "-n", namespace) == "yes"
    assert can_i("get", "pods", "--subresource=log", "-n", "default") == "no"
    for verb in ("list", "watch", "create", "delete"):
        assert can_i(verb, "pods", "-n", namespace) == "no", verb
    assert can_i("create", "pods", "--subresource=exec", "-n", namespace) == "no"

    _pod(kube_api_client, namespace, "legacy-0")
    api = connect_pod_logs(kubeconfig=str(kubeconfig))
    try:
        # Allowed to read the pod: not scheduled, so no instance yet.
        assert await api.instance(namespace, "legacy-0", "manager") is None
        # Allowed to ask for the log: not on a node yet, the apiserver answers 204, an empty
        # stream (not 403).
        chunks = [c async for c in api.stream(namespace, "legacy-0", "manager", since=None)]
        assert chunks == []
        with pytest.raises(PodLogError) as forbidden:
            async for _ in api.stream("default", "legacy-0", "manager", since=None):
                pass
        assert forbidden.value.status == 403
        with pytest.raises(PodLogError) as no_pod:
            await api.instance("default", "legacy-0", "manager")
        assert no_pod.value.status == 403
    finally:
        await api.close()


async def test_instance_is_the_container_id_or_its_start_time(
    kube_api_client: client.ApiClient, control_plane: ControlPlane, namespace: str
) -> None:
    core = client.CoreV1Api(kube_api_client)
    _pod(kube_api_client, namespace, "legacy-1")
    running = {"running": {"startedAt": "2026-11-28T17:00:00Z"}}
    status = {
        "name": "manager",
        "image": "x",
        "imageID": "",
        "ready": True,
        "restartCount": 2,
        "state": running,
    }
    core.patch_namespaced_pod_status(
        "legacy-1", namespace, {"status": {"containerStatuses": [status]}}
    )
    api = connect_pod_logs(kubeconfig=str(control_plane.kubeconfig))
    try:
        started = await api.instance(namespace, "legacy-1", "manager")
        assert started == ContainerInstance("started:2026-11-28T17:00:00Z", 2)
        core.patch_namespaced_pod_status(
            "legacy-1",
            namespace,
            {"status": {"containerStatuses": [{**status, "containerID": "containerd://abc"}]}},
        )
        assert await api.instance(namespace, "legacy-1", "manager") == ContainerInstance(
            "containerd://abc", 2
        )
        assert await api.instance(namespace, "legacy-1", "sidecar") is None
    finally:
        await api.close()
