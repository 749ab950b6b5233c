"""`sidecar.kube` with the least-privilege RBAC of manifests/sidecar-rbac and in-cluster
configuration, against a real kube-apiserver."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.config import incluster_config

from sidecar.kube import connect
from sidecar.model import ObjectTarget
from tests.controlplane import ControlPlane
from tests.kube_support import (
    _create_pod,
    _create_rqa,
    _events,
    _lookups,
    _metrics,
    _recorder,
    _spec,
    install_sidecar_rbac,
)
from tests.sidecar_rbac import assert_sidecar_grants

# -- RBAC --------------------------------------------------------------------------------------


def test_least_privilege_rbac_writes_events_and_looks_up_only_what_it_may(
    control_plane: ControlPlane,
    kube_api_client: client.ApiClient,
    rqa_crd: str,
    namespace: str,
    tmp_path: Path,
) -> None:
    token = install_sidecar_rbac(control_plane, kube_api_client, namespace, tmp_path)
    core = client.CoreV1Api(kube_api_client)
    kubeconfig = control_plane.token_kubeconfig(token, tmp_path / "sidecar.kubeconfig")

    def can_i(*args: str) -> str:
        out = control_plane.kubectl("auth", "can-i", *args, kubeconfig=kubeconfig, check=False)
        return out.stdout.strip()

    # Exactly the rules in the manifests, nothing else; discovery comes with being authenticated.
    assert_sidecar_grants(can_i, namespace)
    assert can_i("create", "events", "-n", namespace) == "yes"
    assert can_i("patch", "events", "-n", namespace) == "yes"
    for verb in ("get", "list", "watch", "update", "delete"):
        assert can_i(verb, "events", "-n", namespace) == "no", verb
    assert can_i("create", "events", "-n", "default") == "no"
    assert can_i("get", "pods", "-n", namespace) == "yes"
    assert can_i("list", "pods", "-n", namespace) == "no"
    assert can_i("get", f"resourcequotaautoscalers.{rqa_crd}", "-n", namespace) == "yes"
    assert can_i("get", "leases.coordination.k8s.io", "-n", namespace) == "yes"
    assert can_i("get", "configmaps", "-n", namespace) == "no"
    assert can_i("get", "secrets", "-n", namespace) == "no"
    assert can_i("get", "/apis") == "yes"
    assert can_i("get", f"/apis/{rqa_crd}/v1") == "yes"

    secrets = control_plane.kubectl(
        "get", "secrets", "-n", namespace, kubeconfig=kubeconfig, check=False
    )
    assert secrets.returncode == 1
    assert 'cannot list resource "secrets"' in secrets.stderr
    sa_api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    try:
        with pytest.raises(client.ApiException) as forbidden:
            client.CoreV1Api(sa_api).list_namespaced_secret(namespace)
        assert forbidden.value.status == 403
    finally:
        sa_api.close()

    pod_uid, _ = _create_pod(kube_api_client, namespace, "web-0")
    rqa_uid = _create_rqa(kube_api_client, namespace, "team-a")
    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="quota-settings"))
    )
    registry, metrics = _metrics()
    with connect(kubeconfig=str(kubeconfig), metrics=metrics) as sink:
        recorder = _recorder(sink, metrics)
        pod_spec = _spec(ObjectTarget("Pod", "web-0", namespace))
        assert recorder.record(pod_spec) == "create"
        assert recorder.record(pod_spec) == "patch"
        rqa = ObjectTarget("ResourceQuotaAutoscaler", "team-a", namespace, "", rqa_crd)
        assert (
            recorder.record(_spec(rqa, "raised", reason="QuotaRaised", type="Normal")) == "create"
        )
        # Not granted: the Event is still written, without uid, and the refusal is counted.
        settings = ObjectTarget("ConfigMap", "quota-settings", namespace)
        assert recorder.record(_spec(settings, "settings reloaded", reason="Reloaded")) == "create"
    assert _lookups(registry, "found") == 2
    assert _lookups(registry, "hit") == 1
    assert _lookups(registry, "forbidden") == 1

    by_reason = {e["reason"]: e for e in _events(control_plane, namespace)}
    assert by_reason["QuotaNearlyExhausted"]["involvedObject"]["uid"] == pod_uid
    assert by_reason["QuotaNearlyExhausted"]["count"] == 2
    assert by_reason["QuotaRaised"]["involvedObject"]["uid"] == rqa_uid
    assert by_reason["QuotaRaised"]["involvedObject"]["apiVersion"] == f"{rqa_crd}/v1"
    assert by_reason["Reloaded"]["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "quota-settings",
        "namespace": namespace,
    }


def test_in_cluster_service_account_configuration(
    control_plane: ControlPlane,
    kube_api_client: client.ApiClient,
    namespace: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What a pod sees: KUBERNETES_SERVICE_HOST/PORT and the mounted token and CA files."""
    token = install_sidecar_rbac(control_plane, kube_api_client, namespace, tmp_path)
    mounted = tmp_path / "serviceaccount"
    mounted.mkdir()
    (mounted / "token").write_text(token)
    (mounted / "ca.crt").write_bytes(control_plane.ca_pem)
    host, port = control_plane.server.removeprefix("https://").rsplit(":", 1)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", host)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", port)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "ignored"))
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(mounted / "token"))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(mounted / "ca.crt"))
    pod_uid, _ = _create_pod(kube_api_client, namespace, "web-0")
    registry, metrics = _metrics()
    with connect(kubeconfig=None, metrics=metrics) as sink:
        assert sink.server == control_plane.server
        recorder = _recorder(sink, metrics)
        assert recorder.record(_spec(ObjectTarget("Pod", "web-0", namespace))) == "create"
    [event] = _events(control_plane, namespace)
    assert event["involvedObject"]["uid"] == pod_uid
    assert _lookups(registry, "found") == 1
