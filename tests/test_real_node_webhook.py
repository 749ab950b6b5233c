"""The webhook as it is deployed: `manifests/webhook` on the real node (the cluster of
tests/test_real_node.py), its pods running the sidecar's image, kube-apiserver calling it
through its Service.

Everything is the manifests' own but the TLS, made here as `bootstrap-tls.sh` would (a CA, a
serving certificate for `event-sidecar-webhook.event-sidecar-system.svc`, the Secret the
Deployment mounts, the CA in the configuration's `caBundle`), with the test CA of the control
plane instead of openssl. kube-apiserver runs on the host: it resolves the Service to its
ClusterIP, which kube-proxy's iptables rules (in the host's OUTPUT chain too) send to a webhook
pod through the CNI bridge. Then the example, opted in with its label, is applied as a user
would (`kubectl apply -k manifests/example`), and the webhook's injection runs: the native
sidecar reads the controller's stderr and writes the Events.
"""

from __future__ import annotations

import base64
import json
import ssl
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from sidecar.inject import SIDECAR_NAME
from sidecar.inject.settings import DEFAULT_IMAGE
from tests.controlplane import REPO_ROOT, ControlPlane
from tests.realnode import NODE_NAME
from tests.test_real_node import (
    EXPECTED_EVENTS,
    Cluster,
    running_cluster,
    wait_events,
    wait_running,
)

pytestmark = pytest.mark.controlplane

WEBHOOK_NAMESPACE = "event-sidecar-system"
SERVICE = "event-sidecar-webhook"
CONFIGURATION = "event-sidecar-injector"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with running_cluster() as running:
        yield running


def deploy_webhook(cp: ControlPlane) -> None:
    """`kubectl apply -k manifests/webhook`, then its TLS as bootstrap-tls.sh makes it."""
    cp.kubectl("apply", "-k", str(REPO_ROOT / "manifests" / "webhook"))
    dns = f"{SERVICE}.{WEBHOOK_NAMESPACE}.svc"
    leaf = cp.ca.issue_cert(dns, f"{dns}.cluster.local")
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": f"{SERVICE}-tls", "namespace": WEBHOOK_NAMESPACE},
        "data": {
            "tls.crt": b64(b"".join(blob.bytes() for blob in leaf.cert_chain_pems)),
            "tls.key": b64(leaf.private_key_pem.bytes()),
            "ca.crt": b64(cp.ca_pem),
        },
    }
    cp.kubectl("apply", "-f", "-", input=json.dumps(secret))
    patch = [{"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": b64(cp.ca_pem)}]
    cp.kubectl(
        "patch", "mutatingwebhookconfiguration", CONFIGURATION, "--type=json",
        "-p", json.dumps(patch),
    )  # fmt: skip


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def webhook_pods(cp: ControlPlane) -> list[dict[str, Any]]:
    return list(
        json.loads(
            cp.kubectl(
                "get", "pods", "-n", WEBHOOK_NAMESPACE, "-l",
                f"app.kubernetes.io/name={SERVICE}", "-o", "json",
            ).stdout
        )["items"]
    )  # fmt: skip


def wait_available(cp: ControlPlane, timeout: float = 120) -> list[dict[str, Any]]:
    """The webhook's pods, once every replica is ready (its readiness probe, over HTTPS)."""
    deadline = time.monotonic() + timeout
    while True:
        deployment = json.loads(
            cp.kubectl("get", "deployment", SERVICE, "-n", WEBHOOK_NAMESPACE, "-o", "json").stdout
        )
        want = deployment["spec"]["replicas"]
        if deployment.get("status", {}).get("readyReplicas", 0) == want:
            return webhook_pods(cp)
        assert time.monotonic() < deadline, (
            f"webhook not ready after {timeout:.0f} s: "
            f"{[p.get('status') for p in webhook_pods(cp)]}"
        )
        time.sleep(1)


def dry_run_pod(cp: ControlPlane, name: str) -> dict[str, Any]:
    """An opted-in pod created with server-side dry run (admitted, not stored)."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "quota-system",
            "labels": {"event-sidecar.kube-event-sidecar.io/inject": "true"},
        },
        "spec": {
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65532,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "controller",
                    "image": "registry.example.com/quota-autoscaler:v1.4.2",
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }
    out = cp.kubectl("create", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(pod))
    return dict(json.loads(out.stdout))


def injections(cp: ControlPlane, pod: dict[str, Any]) -> float:
    """`event_sidecar_inject_injected_total` of one webhook pod, at its address."""
    context = ssl.create_default_context(cadata=cp.ca_pem.decode())
    context.check_hostname = False  # the address is the pod's; the name is the Service's
    url = f"https://{pod['status']['podIP']}:8443/metrics"
    with urllib.request.urlopen(url, timeout=5, context=context) as response:
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("event_sidecar_inject_injected_total ")
    )


def injected(pod: dict[str, Any]) -> bool:
    return any(c["name"] == SIDECAR_NAME for c in pod["spec"].get("initContainers") or ())


def test_the_webhook_pod_injects_through_its_service(cluster: Cluster) -> None:
    cp = cluster.cp
    began = time.monotonic()
    deploy_webhook(cp)
    pods = wait_available(cp)
    available = time.monotonic() - began
    assert {p["spec"]["nodeName"] for p in pods} == {NODE_NAME}
    assert {c["image"] for p in pods for c in p["spec"]["containers"]} == {DEFAULT_IMAGE}
    service = json.loads(
        cp.kubectl("get", "service", SERVICE, "-n", WEBHOOK_NAMESPACE, "-o", "json").stdout
    )
    assert service["spec"]["clusterIP"]
    # The configuration reaches the apiserver's admission chain through an informer.
    deadline = time.monotonic() + 30
    while not injected(dry_run_pod(cp, f"probe-{time.monotonic_ns()}")):
        assert time.monotonic() < deadline, (
            "the apiserver never injected (failurePolicy Ignore hides why):\n"
            + "\n".join(
                line
                for line in cp.log_path("kube-apiserver").read_text().splitlines()
                if "webhook" in line
            )[-3000:]
        )
        time.sleep(0.5)

    cp.kubectl("apply", "-k", str(REPO_ROOT / "manifests" / "example"))
    pod = wait_running(cluster)
    assert pod["spec"]["nodeName"] == NODE_NAME
    [sidecar] = [c for c in pod["spec"]["initContainers"] if c["name"] == SIDECAR_NAME]
    assert sidecar["restartPolicy"] == "Always" and sidecar["image"] == DEFAULT_IMAGE
    annotations = pod["metadata"]["annotations"]
    assert annotations["event-sidecar.kube-event-sidecar.io/status"] == "injected"
    wait_events(cp, EXPECTED_EVENTS)
    # The webhook pods' own count of pods given the sidecar (scraped at their addresses over
    # TLS, as its certificate names the Service): the probes and the example's pod.
    counted = sum(injections(cp, p) for p in pods)
    assert counted >= 2, counted
    print(
        f"webhook available {available:.1f} s after apply; {len(pods)} pods; example injected "
        f"and Running {time.monotonic() - began:.1f} s after",
        file=sys.stderr,
    )
