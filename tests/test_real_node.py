"""The injected example on a real node: the image built from the Dockerfile, run by a real kubelet.

The cluster is the control plane of tests/controlplane.py (kube-apiserver on the host's address,
kube-controller-manager, kube-scheduler) with one real node from tests/realnode.py: containerd,
runc and the CNI plugins from Debian, kubelet and kube-proxy built from the same Kubernetes
version. The sidecar's image is the one `make image` builds (on the stand-in Debian base, as
tests/test_image.py explains); the controller is a stand-in image printing the example log to
stderr, each line stamped with the current time. Nothing here is emulated: the kubelet starts the
native sidecar and the controller, the sidecar reads the controller's stderr through
kube-apiserver -> kubelet -> the CRI log file, authenticated by its projected ServiceAccount token,
and writes the Events `kubectl describe` shows. A node that cannot start fails the tests with the
reason; nothing falls back to the simulated node.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sidecar.inject import SIDECAR_NAME
from sidecar.inject.settings import DEFAULT_IMAGE
from tests.controlplane import REPO_ROOT, ControlPlane
from tests.realnode import (
    NODE_NAME,
    RealNode,
    build_controller_image,
    host_address,
    host_state,
)
from tests.test_webhook_e2e import install_crd

pytestmark = pytest.mark.controlplane

NAMESPACE = "quota-system"
CONTROLLER = "controller"
RQA_GROUP = "autoscaling.example.com"
TEAMS = ("team-a", "team-b", "team-c")  # the example log's ResourceQuotaAutoscalers
EVENT_SIDECAR = [sys.executable, "-m", "sidecar"]
EXAMPLE_LOG = REPO_ROOT / "examples" / "quota-autoscaler.log"  # what the stand-in controller prints
#: What `make demo`'s replay of the example writes: 13 Events created (28 writes in all).
EXPECTED_EVENTS = 13


@dataclass
class Cluster:
    cp: ControlPlane
    node: RealNode
    seconds: float


def build_sidecar_image() -> str:
    proc = subprocess.run(
        ["bash", str(REPO_ROOT / "tools" / "build-image.sh")],
        env={
            **os.environ,
            "BASE": "debian",
            "PYTHON": sys.executable,
            "CONTAINERS_CONF": str(REPO_ROOT / "tools" / "containers.conf"),
        },
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert proc.returncode == 0, f"tools/build-image.sh failed:\n{proc.stderr[-4000:]}"
    assert proc.stdout.strip().splitlines()[-1] == DEFAULT_IMAGE
    return DEFAULT_IMAGE


@contextmanager
def running_cluster(
    *, example: bool = True, kubelet_config: Mapping[str, object] | None = None
) -> Iterator[Cluster]:
    """The control plane with its real node running the built images and, with `example`, the
    example's namespace and objects; afterwards the host is as it was before (asserted). One
    real node at a time: each test module that needs one enters this in a module fixture."""
    images = [build_sidecar_image(), build_controller_image()]
    began = time.monotonic()
    with ControlPlane(node_address=host_address()) as cp:
        cp.start_cluster(simulated_node=False)
        with RealNode(cp, images=images, kubelet_config=kubelet_config) as node:
            seconds = time.monotonic() - began
            print(f"control plane + real node up in {seconds:.1f} s", file=sys.stderr)
            if example:
                cp.kubectl(
                    "apply", "-f", str(REPO_ROOT / "manifests" / "example" / "namespace.yaml")
                )
                install_example_objects(cp)
            yield Cluster(cp, node, seconds)
            stopping = time.monotonic()
    print(
        f"torn down in {time.monotonic() - stopping:.1f} s (node: {node.stop_seconds})",
        file=sys.stderr,
    )
    assert host_state() == node.host_before


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """The cluster with its real node; afterwards the host is as it was before."""
    with running_cluster(example=False) as running:
        yield running


def install_example_objects(cp: ControlPlane) -> None:
    """The example's ResourceQuotaAutoscalers, and the sidecar's RBAC in their namespaces (the
    example grants it in its own; the controller manages objects in the teams' namespaces)."""
    install_crd(cp, RQA_GROUP, "ResourceQuotaAutoscaler", "resourcequotaautoscalers")
    for team in TEAMS:
        cp.kubectl("create", "namespace", team)
        rqa = {
            "apiVersion": f"{RQA_GROUP}/v1",
            "kind": "ResourceQuotaAutoscaler",
            "metadata": {"name": team, "namespace": team},
        }
        cp.kubectl("apply", "-f", "-", input=json.dumps(rqa))
        for role in ("event-sidecar-events", "event-sidecar-lookup"):
            cp.kubectl(
                "create", "rolebinding", role, "-n", team, f"--clusterrole={role}",
                f"--serviceaccount={NAMESPACE}:event-sidecar",
            )  # fmt: skip


def apply_injected_example(cp: ControlPlane) -> None:
    """`kubectl kustomize manifests/example | event-sidecar inject -f - | kubectl apply -f -`."""
    rendered = cp.kubectl("kustomize", str(REPO_ROOT / "manifests" / "example")).stdout
    injected = subprocess.run(
        [*EVENT_SIDECAR, "inject", "-f", "-"],
        input=rendered,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=REPO_ROOT,
    ).stdout
    cp.kubectl("apply", "-f", "-", input=injected)


def the_pod(cp: ControlPlane) -> dict[str, Any]:
    pods = json.loads(
        cp.kubectl(
            "get", "pods", "-n", NAMESPACE, "-l", "app.kubernetes.io/name=quota-autoscaler",
            "-o", "json",
        ).stdout
    )["items"]  # fmt: skip
    live = [p for p in pods if "deletionTimestamp" not in p["metadata"]]
    assert len(live) <= 1, f"{len(live)} pods"
    return dict(live[0]) if live else {}


def statuses(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    status = pod.get("status", {})
    every = [*status.get("initContainerStatuses", ()), *status.get("containerStatuses", ())]
    return {s["name"]: s for s in every}


def wait_running(cluster: Cluster, timeout: float = 90) -> dict[str, Any]:
    """The pod once both its containers run and are ready (`kubectl get pods`: 2/2 Running)."""
    deadline = time.monotonic() + timeout
    pod: dict[str, Any] = {}
    while time.monotonic() < deadline:
        pod = the_pod(cluster.cp)
        running = statuses(pod)
        if pod.get("status", {}).get("phase") == "Running" and all(
            running.get(name, {}).get("ready") for name in (SIDECAR_NAME, CONTROLLER)
        ):
            return pod
        time.sleep(0.3)
    pytest.fail(
        f"pod not 2/2 Running after {timeout:.0f} s: {json.dumps(pod.get('status'))[:3000]}\n"
        f"{tail(cluster.node.log_path('kubelet'))}"
    )


def tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def events(cp: ControlPlane) -> list[dict[str, Any]]:
    """The Events the sidecar wrote (source component quota-autoscaler), in every namespace."""
    items = json.loads(cp.kubectl("get", "events", "-A", "-o", "json").stdout)["items"]
    return [e for e in items if (e.get("source") or {}).get("component") == "quota-autoscaler"]


def wait_events(cp: ControlPlane, count: int, timeout: float = 60) -> list[dict[str, Any]]:
    """Until `count` Events exist; then a moment more, to see that no more come."""
    deadline = time.monotonic() + timeout
    while len(seen := events(cp)) < count:
        assert time.monotonic() < deadline, f"{len(seen)} Events, want {count}"
        time.sleep(0.5)
    time.sleep(3)
    seen = events(cp)
    assert len(seen) == count, f"{len(seen)} Events, want {count}"
    return seen


def sidecar_log(cp: ControlPlane, previous: bool = False) -> str:
    return cp.kubectl(
        "logs", "-n", NAMESPACE, "deploy/quota-autoscaler", "-c", SIDECAR_NAME,
        *(["--previous"] if previous else []), check=False,
    ).stdout  # fmt: skip


def test_the_injected_example_runs_on_a_real_kubelet(cluster: Cluster) -> None:
    cp = cluster.cp
    began = time.monotonic()
    cp.kubectl("apply", "-f", str(REPO_ROOT / "manifests" / "example" / "namespace.yaml"))
    install_example_objects(cp)
    apply_injected_example(cp)
    pod = wait_running(cluster)
    running_after = time.monotonic() - began

    # The kubelet runs both, locked down as injected (restricted Pod Security is enforced).
    assert pod["spec"]["nodeName"] == NODE_NAME
    [sidecar] = [c for c in pod["spec"]["initContainers"] if c["name"] == SIDECAR_NAME]
    assert sidecar["restartPolicy"] == "Always", "a native sidecar"
    assert sidecar["image"] == DEFAULT_IMAGE
    assert sidecar["args"][sidecar["args"].index("--pod-log") + 1] == CONTROLLER
    # Admitted where `restricted` Pod Security is enforced; ready by the kubelet's own probes.
    labels = json.loads(cp.kubectl("get", "namespace", NAMESPACE, "-o", "json").stdout)
    assert labels["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert "readinessProbe" in sidecar and "livenessProbe" in sidecar
    # The kernel's view of the sidecar's process: what the pod spec asked for, enforced.
    status = process_status(container_pid(cluster.node, pod, SIDECAR_NAME))
    assert status["Uid"].split()[:2] == ["65532", "65532"], status["Uid"]
    assert int(status["CapEff"], 16) == 0 and status["NoNewPrivs"] == "1", status
    assert status["Seccomp"] == "2", "RuntimeDefault seccomp filter"

    # The sidecar read the controller's stderr through apiserver -> kubelet -> CRI log, and
    # wrote the Events of `make demo`'s replay, each once.
    written = wait_events(cp, EXPECTED_EVENTS)
    reasons = sorted({e["reason"] for e in written})
    assert "QuotaAtLimit" in reasons and "ReconcileError" in reasons, reasons
    described = cp.kubectl(
        "describe", f"resourcequotaautoscalers.{RQA_GROUP}", "team-a", "-n", "team-a"
    ).stdout
    assert "QuotaExpanded" in described and "QuotaAtLimit" in described, described
    assert "扩容成功 资源类型: cpu 1 -> 2" in described
    print(f"2/2 Running {running_after:.1f} s after apply", file=sys.stderr)

    # Its cgroup holds it to the injected memory limit; what it used for the example's log.
    usage = cgroup_usage(container_pid(cluster.node, pod, SIDECAR_NAME))
    limit = sidecar["resources"]["limits"]["memory"]
    assert limit.endswith("Mi") and usage["memory limit"] == int(limit[:-2]) * 2**20, usage
    assert usage["memory peak"] < usage["memory limit"], usage
    print(
        f"sidecar in its cgroup after the example: peak {usage['memory peak'] / 2**20:.1f} MiB, "
        f"now {usage['memory now'] / 2**20:.1f} MiB (limit {limit}, request "
        f"{sidecar['resources']['requests']['memory']}), CPU {usage['cpu seconds']:.2f} s",
        file=sys.stderr,
    )

    # Stamped now, as a live controller's lines are (not with the example log's date).
    for event in written:
        assert age(event) < 300, f"an Event {age(event):.0f} s old: {event}"

    # kill -9 of the sidecar's process: the kubelet restarts the container, which resumes from
    # its checkpoint (on the pod's emptyDir) and writes no Event again.
    before = {e["metadata"]["name"]: e.get("count") for e in written}
    os.kill(container_pid(cluster.node, pod, SIDECAR_NAME), signal.SIGKILL)
    deadline = time.monotonic() + 90
    while statuses(pod := the_pod(cp))[SIDECAR_NAME].get("restartCount", 0) < 1:
        assert time.monotonic() < deadline, "the kubelet did not restart the sidecar"
        time.sleep(0.3)
    pod = wait_running(cluster)
    assert statuses(pod)[CONTROLLER].get("restartCount", 0) == 0
    assert "resuming from checkpoint" in sidecar_log(cp)
    # The restarted sidecar resumes the controller's log at its checkpoint (the lines of that
    # second read again are skipped, the rest read) to its end, finds nothing new to write, and
    # doubles nothing.
    url = metrics_url(pod)
    settled(url)
    assert metric(url, "event_sidecar_pod_log_lines_skipped_total") > 0
    assert metric(url, "event_sidecar_events_emitted_total") == 0
    assert metric(url, "event_sidecar_pod_log_gaps_total") == 0
    time.sleep(2)
    assert {e["metadata"]["name"]: e.get("count") for e in events(cp)} == before


def test_a_restarted_controller_is_read_on_with_no_line_lost_or_doubled(cluster: Cluster) -> None:
    """The kubelet restarts the controller after `kill -9`: the sidecar reads what is left of the
    previous instance's log, then the new instance's from its start, every line once."""
    cp = cluster.cp
    pod = wait_running(cluster)  # the example, as the test before left it
    url = metrics_url(pod)
    read = settled(url)
    skipped = metric(url, "event_sidecar_pod_log_lines_skipped_total")
    os.kill(container_pid(cluster.node, pod, CONTROLLER), signal.SIGKILL)
    deadline = time.monotonic() + 90
    while statuses(pod := the_pod(cp))[CONTROLLER].get("restartCount", 0) < 1:
        assert time.monotonic() < deadline, "the kubelet did not restart the controller"
        time.sleep(0.3)
    pod = wait_running(cluster)
    assert metrics_url(pod) == url, "the sidecar kept running"
    lines = len(EXAMPLE_LOG.read_text().splitlines())
    deadline = time.monotonic() + 60
    while (got := settled(url)) - read < lines:
        assert time.monotonic() < deadline, f"{got - read} of the new instance's {lines} lines"
    assert got - read == lines, f"{got - read} lines read for the new instance's {lines}"
    assert metric(url, "event_sidecar_pod_log_gaps_total") == 0
    assert statuses(pod)[SIDECAR_NAME].get("restartCount", 0) == 1  # only the kill -9 before
    again = metric(url, "event_sidecar_pod_log_lines_skipped_total") - skipped
    print(
        f"controller restarted: {got - read:.0f} lines read, {again:.0f} skipped", file=sys.stderr
    )


def metrics_url(pod: dict[str, Any]) -> str:
    """The sidecar's /metrics at the pod's address (the host routes to the pod network)."""
    [sidecar] = [c for c in pod["spec"]["initContainers"] if c["name"] == SIDECAR_NAME]
    return f"http://{pod['status']['podIP']}:{sidecar['ports'][0]['containerPort']}/metrics"


def settled(url: str, timeout: float = 60) -> float:
    """The sidecar's count of pod log lines read, once what it read and what a resume skipped as
    read before (not in that count) stay the same for a second: it is at the end of the log."""
    deadline = time.monotonic() + timeout
    seen = (-1.0, -1.0)
    while True:
        now = (
            metric(url, "event_sidecar_lines_read_total"),
            metric(url, "event_sidecar_pod_log_lines_skipped_total"),
        )
        if now == seen and sum(now) > 0:
            return now[0]
        seen = now
        assert time.monotonic() < deadline, f"the sidecar still reading (read, skipped: {now})"
        time.sleep(1)


def age(event: dict[str, Any]) -> float:
    """Seconds since the Event's last occurrence."""
    last = (
        (event.get("series") or {}).get("lastObservedTime")
        or event.get("lastTimestamp")
        or event["eventTime"]
    )
    stamp = datetime.fromisoformat(last.replace("Z", "+00:00"))
    return (datetime.now(UTC) - stamp).total_seconds()


def metric(url: str, name: str) -> float:
    """The sum of a metric's samples, scraped from the pod's address (the host routes to it)."""
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith((name + "{", name + " "))
    )


def cgroup_usage(pid: int) -> dict[str, float]:
    """Memory (bytes: peak, now, limit) and CPU (seconds) of the cgroup v1 holding ``pid``."""
    paths = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(","):
            paths[controller] = path
    memory = Path("/sys/fs/cgroup/memory") / paths["memory"].lstrip("/")
    cpu = Path("/sys/fs/cgroup/cpuacct") / paths["cpuacct"].lstrip("/")
    return {
        "memory peak": int((memory / "memory.max_usage_in_bytes").read_text()),
        "memory now": int((memory / "memory.usage_in_bytes").read_text()),
        "memory limit": int((memory / "memory.limit_in_bytes").read_text()),
        "cpu seconds": int((cpu / "cpuacct.usage").read_text()) / 1e9,
    }


def process_status(pid: int) -> dict[str, str]:
    """`/proc/PID/status` as a mapping (Uid, CapEff, NoNewPrivs, Seccomp, ...)."""
    fields = (line.partition(":") for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {key: value.strip() for key, _, value in fields}


def container_pid(node: RealNode, pod: dict[str, Any], name: str) -> int:
    """The host pid of a container's main process, as containerd (the kubelet's runtime) has it."""
    container_id = statuses(pod)[name]["containerID"].removeprefix("containerd://")
    tasks = node.ctr("tasks", "ls")
    for line in tasks.splitlines()[1:]:
        fields = line.split()
        if fields and fields[0] == container_id:
            return int(fields[1])
    raise AssertionError(f"no task for {name} ({container_id}):\n{tasks}")
