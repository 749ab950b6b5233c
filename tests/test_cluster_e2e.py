"""End to end on a real node: `kubectl apply -k` of the example, injected by the webhook, run by a
real kubelet, its log turned into the Events `kubectl describe` shows, scraped by a real Prometheus.

The cluster is tests/test_real_node.py's: the control plane of tests/controlplane.py on the host's
address and one real node from tests/realnode.py (containerd, runc, CNI, kubelet, kube-proxy),
with the sidecar's image built from the Dockerfile and the stand-in controller's image (the
example log, stamped now). The injection webhook (`python -m sidecar webhook`) runs as a process
on the host, where kube-apiserver calls it; everything after admission is the real thing: the
scheduler binds the pod to the node, the kubelet starts the native sidecar and the controller,
and the sidecar reads the controller's lines by each of its three sources:

- the pod log (the example as it is): the controller's stderr, through kube-apiserver -> kubelet
  -> the CRI log file;
- a file (the `log-path` annotation): the controller appends to a file on the `emptyDir` the
  webhook shares between the two containers;
- a socket (the `socket` annotation): the controller sends its lines to the address the webhook
  puts in its env.

A real Prometheus (Debian's `prometheus`) scrapes the sidecar's metrics port at the pod's address,
which the host reaches through the CNI bridge. A node that cannot start fails the tests with the
reason.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import config

from sidecar.inject import SIDECAR_NAME
from sidecar.inject.annotations import PREFIX
from sidecar.inject.settings import DEFAULT_IMAGE
from tests.controlplane import REPO_ROOT, ControlPlane
from tests.daemon_support import wait_for
from tests.realnode import NODE_NAME
from tests.test_daemon_prometheus import PROMETHEUS, Prometheus
from tests.test_real_node import (
    CONTROLLER,
    EXPECTED_EVENTS,
    NAMESPACE,
    RQA_GROUP,
    Cluster,
    age,
    events,
    metrics_url,
    running_cluster,
    the_pod,
    wait_events,
    wait_running,
)
from tests.test_webhook_e2e import registered, run_webhook, wait_until_injecting

pytestmark = pytest.mark.controlplane

LOG_DIR = "/var/log/quota-autoscaler"
SOCKET = "tcp://127.0.0.1:5170"  # the pod's own loopback: the two containers share it
EMITTED_BY_REASON = "sum by (reason) (event_sidecar_events_emitted_total)"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """The control plane with its real node, the example's objects installed; afterwards the
    host is as it was before."""
    with running_cluster() as running:
        yield running


def remove_example(cp: ControlPlane, timeout: float = 90) -> None:
    """The Deployment deleted, its pod gone from the node, and every Event deleted: each test
    starts from the example's objects alone."""
    cp.kubectl("delete", "deployment", "quota-autoscaler", "-n", NAMESPACE, "--ignore-not-found")
    deadline = time.monotonic() + timeout
    while cp.kubectl("get", "pods", "-n", NAMESPACE, "-o", "name").stdout.strip():
        assert time.monotonic() < deadline, "the example's pod did not go"
        time.sleep(0.5)
    cp.kubectl("delete", "events", "--all", "--all-namespaces")


def example_with(source: str | None) -> str:
    """`kubectl kustomize manifests/example`, with the template opting into the file or socket
    source (and the stand-in controller told to write there) when `source` is given."""
    rendered = list(
        yaml.safe_load_all(
            subprocess.run(
                ["kubectl", "kustomize", str(REPO_ROOT / "manifests" / "example")],
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            ).stdout
        )
    )
    if source is not None:
        [deployment] = [o for o in rendered if o["kind"] == "Deployment"]
        template = deployment["spec"]["template"]
        if source == "log-path":
            template["metadata"]["annotations"][PREFIX + "log-path"] = f"{LOG_DIR}/*.log"
            [controller] = [c for c in template["spec"]["containers"] if c["name"] == CONTROLLER]
            env = {"name": "LOG_FILE", "value": f"{LOG_DIR}/controller.log"}
            controller.setdefault("env", []).append(env)
        else:
            template["metadata"]["annotations"][PREFIX + "socket"] = SOCKET
    return yaml.safe_dump_all(rendered)


def apply_through_the_webhook(cluster: Cluster, work: Path, source: str | None) -> dict[str, Any]:
    """The webhook running and registered for the example's namespace, the example applied
    (`kubectl apply -k` when unchanged), and the pod once 2/2 Running on the real node."""
    cp = cluster.cp
    remove_example(cp)
    api = config.new_client_from_config(config_file=str(cp.kubeconfig))  # type: ignore[no-untyped-call]
    try:
        with (
            run_webhook(cp, work / "webhook", f"--image={DEFAULT_IMAGE}") as hook,
            registered(api, "event-sidecar-e2e", hook.url, cp.ca_pem, NAMESPACE),
        ):
            wait_until_injecting(api, NAMESPACE)
            if source is None:
                cp.kubectl("apply", "-k", str(REPO_ROOT / "manifests" / "example"))
            else:
                cp.kubectl("apply", "-f", "-", input=example_with(source))
            pod = wait_running(cluster)
            assert hook.requests() >= 1
    finally:
        api.close()
    assert pod["spec"]["nodeName"] == NODE_NAME
    [sidecar] = [c for c in pod["spec"]["initContainers"] if c["name"] == SIDECAR_NAME]
    assert sidecar["restartPolicy"] == "Always" and sidecar["image"] == DEFAULT_IMAGE
    return pod


def emitted_by_reason(url: str) -> dict[str, float]:
    """The sidecar's own count of Events written, per reason, scraped from the pod."""
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("event_sidecar_events_emitted_total{"):
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            counts[reason] = counts.get(reason, 0.0) + float(line.rsplit(" ", 1)[1])
    return {reason: count for reason, count in counts.items() if count}


def assert_scraped(url: str, work: Path) -> None:
    """A real Prometheus scraping the sidecar at the pod's address sees what the sidecar counts."""
    if not PROMETHEUS.is_file():
        pytest.fail(f"{PROMETHEUS} is missing: install Debian's prometheus package")
    work.mkdir(parents=True, exist_ok=True)
    expected = emitted_by_reason(url)
    assert sum(expected.values()) >= EXPECTED_EVENTS, expected
    target = url.removeprefix("http://").removesuffix("/metrics")
    prometheus = Prometheus(PROMETHEUS, work, target)
    seen: dict[str, float] = {}

    def counted() -> bool:
        seen.clear()
        for sample in prometheus.query(EMITTED_BY_REASON):
            value = float(sample["value"][1])  # type: ignore[index]
            if value:
                seen[str(sample["metric"]["reason"])] = value  # type: ignore[index]
        return seen == expected

    try:
        wait_for(prometheus.ready, "Prometheus to be ready", timeout=30)
        try:
            wait_for(counted, f"Prometheus to see {expected}", timeout=30)
        except pytest.fail.Exception:
            pytest.fail(f"Prometheus sees {seen}, the sidecar counts {expected}")
        up = prometheus.query('up{job="event-sidecar"}')
        assert [sample["value"][1] for sample in up] == ["1"]  # type: ignore[index]
    finally:
        prometheus.stop()


def assert_described(cp: ControlPlane) -> None:
    """What a user sees: the Events on the custom resource, stamped now (by the live lines)."""
    described = cp.kubectl(
        "describe", f"resourcequotaautoscalers.{RQA_GROUP}", "team-a", "-n", "team-a"
    ).stdout
    assert "QuotaExpanded" in described and "QuotaAtLimit" in described, described
    assert "扩容成功 资源类型: cpu 1 -> 2" in described
    table = cp.kubectl("get", "events", "-n", "team-a").stdout
    assert any("resourcequotaautoscaler/team-a" in row for row in table.splitlines()), table


@pytest.mark.parametrize("source", [None, "log-path", "socket"], ids=["pod-log", "file", "socket"])
def test_the_webhook_injected_example_on_a_real_kubelet(
    cluster: Cluster, tmp_path: Path, source: str | None
) -> None:
    cp = cluster.cp
    began = time.monotonic()
    pod = apply_through_the_webhook(cluster, tmp_path, source)
    running_after = time.monotonic() - began
    [sidecar] = [c for c in pod["spec"]["initContainers"] if c["name"] == SIDECAR_NAME]
    [controller] = [c for c in pod["spec"]["containers"] if c["name"] == CONTROLLER]
    args = sidecar["args"]
    if source is None:
        assert args[args.index("--pod-log") + 1] == CONTROLLER
        assert all("event-sidecar" not in m["name"] for m in controller.get("volumeMounts", ())), (
            "the controller's container is left as it is"
        )
    elif source == "log-path":
        assert args[args.index("--file") + 1] == f"{LOG_DIR}/*.log"
        assert any(m["mountPath"] == LOG_DIR for m in controller["volumeMounts"])
    else:
        assert args[args.index("--tcp") + 1] == SOCKET.removeprefix("tcp://")
        assert {"name": "EVENT_SIDECAR_SOCKET", "value": SOCKET} in controller["env"]

    written = wait_events(cp, EXPECTED_EVENTS)
    reasons = sorted({e["reason"] for e in written})
    assert "QuotaAtLimit" in reasons and "ReconcileError" in reasons, reasons
    for event in written:
        assert age(event) < 300, f"an Event {age(event):.0f} s old: {event}"
    assert_described(cp)
    assert_scraped(metrics_url(pod), tmp_path / "prometheus")
    print(
        f"{source or 'pod log'}: 2/2 Running {running_after:.1f} s after apply, "
        f"done in {time.monotonic() - began:.1f} s",
        file=sys.stderr,
    )


def replica_failure(cp: ControlPlane) -> str:
    """The message of the example's ReplicaSet's `ReplicaFailure` condition ("" without one)."""
    sets = json.loads(cp.kubectl("get", "replicasets", "-n", NAMESPACE, "-o", "json").stdout)
    for replica_set in sets["items"]:
        for condition in replica_set.get("status", {}).get("conditions", ()):
            if condition["type"] == "ReplicaFailure" and condition["status"] == "True":
                return str(condition.get("message", ""))
    return ""


@pytest.mark.parametrize("policy", ["Ignore", "Fail"])
def test_with_the_webhook_down_the_failure_policy_decides(
    cluster: Cluster, tmp_path: Path, policy: str
) -> None:
    """Ignore (the default, fail open): the controller's pod is created without the sidecar and
    runs, and its log turns into no Event. Fail: no pod is created while the webhook is down
    (the ReplicaSet says why); once it is back, the ReplicaSet's retry creates the pod injected."""
    cp = cluster.cp
    remove_example(cp)
    name = f"event-sidecar-down-{policy.lower()}"
    api = config.new_client_from_config(config_file=str(cp.kubeconfig))  # type: ignore[no-untyped-call]
    try:
        with (
            run_webhook(cp, tmp_path / "webhook", f"--image={DEFAULT_IMAGE}") as hook,
            registered(api, name, hook.url, cp.ca_pem, NAMESPACE, failure_policy=policy),
        ):
            wait_until_injecting(api, NAMESPACE)
            hook.stop()
            cp.kubectl("apply", "-k", str(REPO_ROOT / "manifests" / "example"))
            deadline = time.monotonic() + 90
            if policy == "Ignore":
                while not (pod := the_pod(cp)) or not all(
                    s.get("ready") for s in pod["status"].get("containerStatuses", [{}])
                ):
                    assert time.monotonic() < deadline, f"no Running pod: {pod.get('status')}"
                    time.sleep(0.5)
                assert pod["spec"]["nodeName"] == NODE_NAME
                assert not pod["spec"].get("initContainers"), "created uninjected"
                assert [c["name"] for c in pod["spec"]["containers"]] == [CONTROLLER]
                time.sleep(5)  # the controller has printed the example log by now
                assert events(cp) == [], "nothing reads the log: no Event"
                return
            while not (message := replica_failure(cp)):
                assert time.monotonic() < deadline, "the ReplicaSet reports no failure"
                time.sleep(0.5)
            assert "failed calling webhook" in message, message
            assert the_pod(cp) == {}, "no pod while the webhook is down"
            with run_webhook(cp, tmp_path / "webhook-again", f"--image={DEFAULT_IMAGE}") as again:
                cp.kubectl(
                    "patch", "mutatingwebhookconfiguration", name, "--type=json", "-p",
                    json.dumps(
                        [{"op": "replace", "path": "/webhooks/0/clientConfig/url",
                          "value": again.url}]
                    ),
                )  # fmt: skip
                began = time.monotonic()
                pod = wait_running(cluster, timeout=180)
                print(f"Fail: injected pod Running {time.monotonic() - began:.1f} s after the "
                      "webhook came back", file=sys.stderr)  # fmt: skip
                assert again.requests() >= 1
    finally:
        api.close()
    [sidecar] = [c for c in pod["spec"]["initContainers"] if c["name"] == SIDECAR_NAME]
    assert sidecar["image"] == DEFAULT_IMAGE
    wait_events(cp, EXPECTED_EVENTS)
