"""The injected sidecar's probes as the kubelet calls them, on a real node (the cluster of
tests/test_real_node.py), when the sidecar is unhealthy:

- readiness: its source unreadable for good (the pod log API answers 403 once its RoleBinding is
  deleted): after `--unreadable-seconds` its `/readyz` fails, and after the probe's three
  failures the kubelet marks the sidecar, and so the pod, not ready, without restarting anything;
  the RoleBinding back, ready again;
- liveness: the sidecar wedged (SIGSTOP: its `/healthz` stops answering): after three failures
  the kubelet kills it and starts it again, which resumes from its checkpoint.

Both are asserted from what the kubelet reports: the pod's status (conditions, `ready`,
`restartCount`, `lastState`) and its Events (`Unhealthy`, `Killing`).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sidecar.inject import SIDECAR_NAME
from tests.controlplane import ControlPlane
from tests.realnode_pods import apply_example
from tests.test_cluster_e2e import remove_example
from tests.test_real_node import (
    CONTROLLER,
    NAMESPACE,
    Cluster,
    container_pid,
    metric,
    metrics_url,
    running_cluster,
    settled,
    sidecar_log,
    statuses,
    the_pod,
    wait_running,
)

pytestmark = pytest.mark.controlplane

#: manifests/sidecar-rbac's grant of `get pods/log`, in the example's namespace.
ROLEBINDING = "event-sidecar-pod-logs"
UNREADABLE_SECONDS = 5


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """The control plane with its real node and the example's objects; afterwards the host is
    as it was before."""
    with running_cluster() as running:
        yield running


@pytest.fixture
def fresh(cluster: Cluster) -> Iterator[Cluster]:
    """The example's pod running (its sidecar told it is unreadable after 5 s), Ready."""
    remove_example(cluster.cp)
    apply_example(cluster.cp, sidecar_args=["--unreadable-seconds", str(UNREADABLE_SECONDS)])
    wait_running(cluster)
    yield cluster
    remove_example(cluster.cp)


def condition(pod: dict[str, Any], kind: str) -> str:
    for found in pod.get("status", {}).get("conditions", ()):
        if found["type"] == kind:
            return str(found["status"])
    return ""


def kubelet_events(cp: ControlPlane, reason: str) -> list[str]:
    """The messages of the Events the kubelet wrote about the example's pod with ``reason``."""
    items = json.loads(cp.kubectl("get", "events", "-n", NAMESPACE, "-o", "json").stdout)["items"]
    return [
        str(e.get("message", ""))
        for e in items
        if e["reason"] == reason and e["involvedObject"].get("kind") == "Pod"
    ]


def wait_pod(cp: ControlPlane, what: str, holds: Any, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not holds(pod := the_pod(cp)):
        assert time.monotonic() < deadline, f"{what} after {timeout:.0f} s: {pod.get('status')}"
        time.sleep(0.5)
    return pod


def test_an_unreadable_source_makes_the_pod_not_ready_until_readable(fresh: Cluster) -> None:
    cp = fresh.cp
    url = metrics_url(the_pod(cp))
    settled(url)
    binding = json.loads(
        cp.kubectl("get", "rolebinding", ROLEBINDING, "-n", NAMESPACE, "-o", "json").stdout
    )
    cp.kubectl("delete", "rolebinding", ROLEBINDING, "-n", NAMESPACE)
    # The followed stream, authorized when it opened, ends with the controller's instance: the
    # next request is refused.
    os.kill(container_pid(fresh.node, the_pod(cp), CONTROLLER), signal.SIGKILL)
    began = time.monotonic()
    pod = wait_pod(
        cp,
        "still ready",
        lambda p: statuses(p)[SIDECAR_NAME].get("ready") is False,
        timeout=UNREADABLE_SECONDS + 3 * 10 + 30,
    )
    not_ready = time.monotonic() - began
    assert condition(pod, "Ready") == "False" and condition(pod, "ContainersReady") == "False"
    assert metric(url, "event_sidecar_source_unreadable") == 1
    failed = kubelet_events(cp, "Unhealthy")
    assert any("Readiness probe failed" in m and "503" in m for m in failed), failed
    assert statuses(pod)[SIDECAR_NAME].get("restartCount", 0) == 0, "readiness restarts nothing"
    assert "running" in statuses(pod)[SIDECAR_NAME]["state"]

    binding["metadata"] = {k: binding["metadata"][k] for k in ("name", "namespace", "labels")}
    cp.kubectl("create", "-f", "-", input=json.dumps(binding))
    began = time.monotonic()
    pod = wait_pod(cp, "not ready again", lambda p: condition(p, "Ready") == "True", timeout=90)
    ready = time.monotonic() - began
    assert metric(url, "event_sidecar_source_unreadable") == 0
    assert statuses(pod)[SIDECAR_NAME].get("restartCount", 0) == 0
    print(
        f"not ready {not_ready:.0f} s after the 403s began, ready {ready:.0f} s after the grant",
        file=sys.stderr,
    )


def test_a_wedged_sidecar_is_restarted_by_its_liveness_probe(fresh: Cluster) -> None:
    cp = fresh.cp
    pod = the_pod(cp)
    settled(metrics_url(pod))
    os.kill(container_pid(fresh.node, pod, SIDECAR_NAME), signal.SIGSTOP)
    began = time.monotonic()
    # Three failures 20 s apart, then the kill (SIGTERM waits out the grace period: stopped).
    pod = wait_pod(
        cp,
        "not restarted",
        lambda p: statuses(p)[SIDECAR_NAME].get("restartCount", 0) >= 1,
        timeout=3 * 20 + 30 + 60,
    )
    restarted = time.monotonic() - began
    sidecar = statuses(pod)[SIDECAR_NAME]
    assert sidecar["lastState"]["terminated"]["exitCode"] == 137, sidecar  # SIGKILL
    failed = kubelet_events(cp, "Unhealthy")
    assert any("Liveness probe failed" in m for m in failed), failed
    killing = kubelet_events(cp, "Killing")
    assert any(f"{SIDECAR_NAME} failed liveness probe" in m for m in killing), killing
    assert statuses(pod)[CONTROLLER].get("restartCount", 0) == 0
    pod = wait_running(fresh)
    assert "resuming from checkpoint" in sidecar_log(cp)
    print(f"restarted by the kubelet {restarted:.0f} s after the SIGSTOP", file=sys.stderr)
