"""End to end in a small working cluster: the example controller's Deployment, injected by the
webhook, scheduled to a kwok node, Running; its sidecar run as the kubelet would run it; the
controller's stdout read through the pod log API, and the Events it stands for in the API.

The cluster (tests/controlplane.py `start_cluster`): kube-apiserver, etcd,
kube-controller-manager (Deployment -> ReplicaSet -> Pod, the `default` ServiceAccount, the
`kube-root-ca.crt` ConfigMap), kube-scheduler (binds the pod to the kwok node) and kwok (marks it
Running; serves the controller container's log from a CRI-format file this test writes, as a
kubelet serves its containers' logs). The sidecar container of the stored Pod runs locally
(tests/kubelet.py) with nothing on its command line written by the test: its own command, args,
env (downward API resolved), the rules ConfigMap as files, and a TokenRequest token bound to the
pod as its only credential. A real Prometheus (Debian's `prometheus`, as in
tests/test_daemon_prometheus.py) scrapes that sidecar's metrics port. The same flow runs with the
file source (the `log-path` annotation: the test writes the controller's lines into the shared
`emptyDir`, a folder tests/kubelet.py maps) and with the socket source (the `socket` annotation:
the test writes the lines to the sidecar's socket).
"""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from sidecar.inject import SIDECAR_NAME
from sidecar.inject.annotations import PREFIX
from tests.controlplane import KWOK_NODE, REPO_ROOT, ControlPlane
from tests.daemon_support import wait_for
from tests.kubelet import LocalContainer, prepare
from tests.test_daemon_prometheus import PROMETHEUS, Prometheus, free_port
from tests.test_webhook_e2e import install_crd, registered, run_webhook, wait_until_injecting

pytestmark = pytest.mark.controlplane

NAMESPACE = "quota-system"
CONTAINER = "controller"
RQA_GROUP = "autoscaling.example.com"
LOG_DIR = "/var/log/quota-autoscaler"
EMITTED_BY_REASON = "sum by (reason) (event_sidecar_events_emitted_total)"


@dataclass
class Cluster:
    cp: ControlPlane
    api: client.ApiClient
    logs: Path

    @property
    def log_file(self) -> Path:
        return self.logs / "controller.log"

    @property
    def previous_log_file(self) -> Path:
        return self.logs / "controller-previous.log"


def cluster_logs(logs: Path) -> dict[str, Any]:
    """kwok's configuration: the controller container's log (and previous log) in `logs`."""
    return {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "ClusterLogs",
        "metadata": {"name": "controller"},
        "spec": {
            "selector": {"matchNamespaces": [NAMESPACE]},
            "logs": [
                {
                    "containers": [CONTAINER],
                    "logsFile": str(logs / "controller.log"),
                    "previousLogsFile": str(logs / "controller-previous.log"),
                    "follow": True,
                }
            ],
        },
    }


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Its own control plane: the controller-manager must not act on the shared one's objects."""
    logs = tmp_path_factory.mktemp("kwok-logs")
    (logs / "controller.log").touch()
    (logs / "controller-previous.log").touch()
    with ControlPlane() as cp:
        cp.start_cluster([cluster_logs(logs)])
        api = config.new_client_from_config(config_file=str(cp.kubeconfig))  # type: ignore[no-untyped-call]
        try:
            yield Cluster(cp, api, logs)
        finally:
            api.close()


def append_cri(path: Path, *lines: str, stream: str = "stderr") -> None:
    """What the container runtime writes for each line of the container's stderr (zap's)."""
    with path.open("a") as out:
        for line in lines:
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            out.write(f"{stamp} {stream} F {line}\n")
            time.sleep(0.001)  # distinct stamps, as a real runtime's would mostly be


def reconcile_error(n: int, *, with_time: bool = True) -> str:
    """A controller-runtime "Reconciler error" zap JSON line about the team-a autoscaler."""
    line: dict[str, Any] = {
        "level": "error",
        "msg": "Reconciler error",
        "controller": "resourcequotaautoscaler",
        "controllerGroup": RQA_GROUP,
        "controllerKind": "ResourceQuotaAutoscaler",
        "ResourceQuotaAutoscaler": {"name": "team-a", "namespace": NAMESPACE},
        "namespace": NAMESPACE,
        "name": "team-a",
        "reconcileID": f"r-{n}",
        "error": 'resourcequotas "team-a" is forbidden: exceeded ceiling',
    }
    if with_time:
        line["ts"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return json.dumps(line)


def install_rqa(
    cp: ControlPlane, objects: Sequence[tuple[str, str]] = (("team-a", NAMESPACE),)
) -> None:
    """The example's CRD and ResourceQuotaAutoscalers (name, namespace)."""
    install_crd(cp, RQA_GROUP, "ResourceQuotaAutoscaler", "resourcequotaautoscalers")
    for name, namespace in objects:
        rqa = {
            "apiVersion": f"{RQA_GROUP}/v1",
            "kind": "ResourceQuotaAutoscaler",
            "metadata": {"name": name, "namespace": namespace},
        }
        cp.kubectl("apply", "-f", "-", input=json.dumps(rqa))


def running_pod(
    cp: ControlPlane, timeout: float = 120, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    """The Deployment's pod once the controller-manager, scheduler and kwok have done their part
    (the one whose template had `annotations`, when given: an older one may still be Running)."""
    deadline = time.monotonic() + timeout
    while True:
        pods = json.loads(
            cp.kubectl(
                "get", "pods", "-n", NAMESPACE, "-l", "app.kubernetes.io/name=quota-autoscaler",
                "-o", "json",
            ).stdout
        )["items"]  # fmt: skip
        running = [
            p
            for p in pods
            if p["status"].get("phase") == "Running"
            and "deletionTimestamp" not in p["metadata"]
            and (annotations or {}).items() <= p["metadata"].get("annotations", {}).items()
        ]
        if running:
            return dict(running[0])
        assert time.monotonic() < deadline, f"no Running pod: {json.dumps(pods)[:2000]}"
        time.sleep(0.5)


def reconcile_error_counts(cp: ControlPlane) -> list[int]:
    """`count` of each ReconcileError Event, as `kubectl get events` shows it in COUNT."""
    events = json.loads(
        cp.kubectl(
            "get", "events", "-n", NAMESPACE, "--field-selector=reason=ReconcileError",
            "-o", "json",
        ).stdout
    )["items"]  # fmt: skip
    return sorted(int(e.get("count") or 1) for e in events)


def wait_for_total(cp: ControlPlane, total: int, timeout: float = 60) -> list[int]:
    """Until the ReconcileError counts add up to `total`; then a moment more, to see no more."""
    deadline = time.monotonic() + timeout
    while sum(counts := reconcile_error_counts(cp)) < total:
        assert time.monotonic() < deadline, f"ReconcileError counts {counts}, want {total}"
        time.sleep(0.5)
    time.sleep(3)
    counts = reconcile_error_counts(cp)
    assert sum(counts) == total, f"doubled: {counts}, want a total of {total}"
    return counts


def restart(cluster: Cluster, pod: dict[str, Any], restart_count: int) -> None:
    """What the kubelet reports after restarting the controller container (kwok never does):
    a new instance, started now, with its restart count."""
    statuses = pod["status"]["containerStatuses"]
    status = next(s for s in statuses if s["name"] == CONTAINER)
    time.sleep(1.1)  # a new start time, to the second
    restarted = {
        **status,
        "restartCount": restart_count,
        "state": {"running": {"startedAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}},
    }
    others = [s for s in statuses if s["name"] != CONTAINER]
    client.CoreV1Api(cluster.api).patch_namespaced_pod_status(
        pod["metadata"]["name"], NAMESPACE, {"status": {"containerStatuses": [*others, restarted]}}
    )


def metric(port: int, name: str, **labels: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        named = line.startswith((name + "{", name + " "))
        if named and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def start_prometheus(port: int, work: Path) -> Prometheus:
    """A Prometheus scraping the sidecar's metrics port every second, ready; stop() it."""
    if not PROMETHEUS.is_file():
        pytest.fail(f"{PROMETHEUS} is missing: install Debian's prometheus package")
    work.mkdir(parents=True, exist_ok=True)
    server = Prometheus(PROMETHEUS, work, f"127.0.0.1:{port}")
    try:
        wait_for(server.ready, "Prometheus to be ready", timeout=30)
    except BaseException:
        server.stop()
        raise
    return server


def wait_scraped(prometheus: Prometheus, expected: dict[str, float]) -> None:
    """Until Prometheus's per-reason sum of emitted Events is `expected` (what the test caused)."""
    seen: list[dict[str, float]] = []

    def counted() -> bool:
        seen[:] = [
            {
                str(sample["metric"]["reason"]): float(sample["value"][1])  # type: ignore[index]
                for sample in prometheus.query(EMITTED_BY_REASON)
            }
        ]
        return seen[0] == expected

    try:
        wait_for(counted, f"Prometheus to see {expected}", timeout=30)
    except pytest.fail.Exception:
        pytest.fail(f"Prometheus sees {seen}, want {expected}")
    up = prometheus.query('up{job="event-sidecar"}')
    assert [sample["value"][1] for sample in up] == ["1"]  # type: ignore[index]


def wait_ready(port: int, proc: Any, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, f"the sidecar exited:\n{log.read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2):
                return
        except OSError:
            assert time.monotonic() < deadline, f"sidecar not ready:\n{log.read_text()[-3000:]}"
            time.sleep(0.3)


def test_the_injected_example_reads_its_controllers_stdout_through_the_api(
    cluster: Cluster, tmp_path: Path
) -> None:
    cp, api = cluster.cp, cluster.api
    cp.kubectl("apply", "-f", str(REPO_ROOT / "manifests" / "example" / "namespace.yaml"))
    install_rqa(cp)
    with (
        run_webhook(cp, tmp_path / "webhook") as hook,
        registered(api, "event-sidecar-cluster-e2e", hook.url, cp.ca_pem, NAMESPACE),
    ):
        wait_until_injecting(api, NAMESPACE)
        cp.kubectl("apply", "-k", str(REPO_ROOT / "manifests" / "example"))
        pod = running_pod(cp)

    # Injected with the default source, bound to the kwok node by the scheduler, Running.
    assert pod["spec"]["nodeName"] == KWOK_NODE
    [sidecar] = [c for c in pod["spec"].get("initContainers") or () if c["name"] == SIDECAR_NAME]
    assert sidecar["args"][sidecar["args"].index("--pod-log") + 1] == CONTAINER
    [controller] = [c for c in pod["spec"]["containers"] if c["name"] == CONTAINER]
    assert "volumeMounts" not in controller or all(
        "event-sidecar" not in m["name"] for m in controller["volumeMounts"]
    ), "the controller's container is left as it is"

    container: LocalContainer = prepare(cp, api, pod, SIDECAR_NAME, tmp_path / "kubelet")
    assert container.env["POD_NAME"] == pod["metadata"]["name"]
    assert container.env["POD_NAMESPACE"] == NAMESPACE
    port = int(sidecar["ports"][0]["containerPort"])
    log = tmp_path / "sidecar.log"

    # Lines logged before the sidecar starts are news too: the instance is read from its start.
    append_cri(cluster.log_file, reconcile_error(1), "not JSON: skipped", reconcile_error(2))
    prometheus = start_prometheus(port, tmp_path / "prometheus")
    proc = container.start(log)
    try:
        wait_ready(port, proc, log)
        append_cri(cluster.log_file, reconcile_error(3, with_time=False))
        assert wait_for_total(cp, 3) == [3]
        wait_scraped(prometheus, {"ReconcileError": 3})
        described = cp.kubectl(
            "describe", f"resourcequotaautoscalers.{RQA_GROUP}", "team-a", "-n", NAMESPACE
        ).stdout
        assert "ReconcileError" in described and "exceeded ceiling" in described
        table = cp.kubectl("get", "events", "-n", NAMESPACE).stdout
        [row] = [line for line in table.splitlines() if "ReconcileError" in line]
        assert "resourcequotaautoscaler/team-a" in row

        # kill -9, lines meanwhile, restart: the checkpoint on the emptyDir resumes exactly.
        proc.kill()
        proc.wait()
        append_cri(cluster.log_file, reconcile_error(4), reconcile_error(5))
        proc = container.start(log)
        wait_ready(port, proc, log)
        wait_for_total(cp, 5)

        # The container restarts before the sidecar read its last line: a new log instance, the
        # old one kwok's previous log; the sidecar reads the previous tail, then the new one.
        proc.kill()
        proc.wait()
        append_cri(cluster.log_file, reconcile_error(6))
        cluster.log_file.replace(cluster.previous_log_file)
        append_cri(cluster.log_file, reconcile_error(7))
        restart(cluster, pod, 1)
        proc = container.start(log)
        wait_ready(port, proc, log)
        wait_for_total(cp, 7)
        assert metric(port, "event_sidecar_pod_log_gaps_total") == 0

        # Two restarts while the sidecar is down: the instance between them was never read
        # (its line 8 is lost), which is counted, and the newest is read from its start.
        proc.kill()
        proc.wait()
        append_cri(cluster.log_file, reconcile_error(8))
        cluster.log_file.replace(cluster.previous_log_file)
        append_cri(cluster.log_file, reconcile_error(9))
        restart(cluster, pod, 3)
        proc = container.start(log)
        wait_ready(port, proc, log)
        wait_for_total(cp, 8)
        assert metric(port, "event_sidecar_pod_log_gaps_total", reason="instance_missed") == 1

        # The log rotated away while the sidecar was down: what it held is gone, counted.
        proc.kill()
        proc.wait()
        cluster.log_file.unlink()
        append_cri(cluster.log_file, reconcile_error(10))
        proc = container.start(log)
        wait_ready(port, proc, log)
        wait_for_total(cp, 9)
        assert metric(port, "event_sidecar_pod_log_gaps_total", reason="rotated") == 1

        # Last, because kwok's node loses its addresses for a while after an apiserver restart
        # (the log is unreachable until kwok sets them again): the restart breaks the stream, and
        # lines logged meanwhile are read once after it.
        cp.restart_apiserver()
        append_cri(cluster.log_file, reconcile_error(11), reconcile_error(12))
        wait_for_total(cp, 11, timeout=180)
        assert metric(port, "event_sidecar_pod_log_reconnects_total") >= 1
        assert metric(port, "event_sidecar_pod_log_gaps_total", reason="rotated") == 1
    finally:
        prometheus.stop()
        proc.terminate()
        proc.wait(30)


def write_to_socket(address: str, *lines: str) -> None:
    """What the controller (or its log shipper) sends to `EVENT_SIDECAR_SOCKET`."""
    host, port = address.removeprefix("tcp://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        connection.sendall("".join(line + "\n" for line in lines).encode())


@pytest.mark.parametrize("source", ["log-path", "socket"])
def test_the_same_flow_with_the_file_and_the_socket_source(
    cluster: Cluster, tmp_path: Path, source: str
) -> None:
    cp, api = cluster.cp, cluster.api
    cp.kubectl("apply", "-f", str(REPO_ROOT / "manifests" / "example" / "namespace.yaml"))
    install_rqa(cp)
    cp.kubectl("delete", "events", "--all", "-n", NAMESPACE)
    value = f"{LOG_DIR}/*.log" if source == "log-path" else f"tcp://127.0.0.1:{free_port()}"
    opt_in = {PREFIX + source: value}
    # Exactly one source annotation on the template: the two are mutually exclusive.
    template = {PREFIX + "log-path": None, PREFIX + "socket": None, **opt_in}
    with (
        run_webhook(cp, tmp_path / "webhook") as hook,
        registered(api, f"event-sidecar-cluster-e2e-{source}", hook.url, cp.ca_pem, NAMESPACE),
    ):
        wait_until_injecting(api, NAMESPACE)
        cp.kubectl("apply", "-k", str(REPO_ROOT / "manifests" / "example"))
        cp.kubectl(
            "patch", "deployment", "quota-autoscaler", "-n", NAMESPACE, "--type=merge", "-p",
            json.dumps({"spec": {"template": {"metadata": {"annotations": template}}}}),
        )  # fmt: skip
        pod = running_pod(cp, annotations=opt_in)

    assert pod["spec"]["nodeName"] == KWOK_NODE
    [sidecar] = [c for c in pod["spec"].get("initContainers") or () if c["name"] == SIDECAR_NAME]
    assert "--pod-log" not in sidecar["args"]
    [controller] = [c for c in pod["spec"]["containers"] if c["name"] == CONTAINER]
    container = prepare(cp, api, pod, SIDECAR_NAME, tmp_path / "kubelet")
    port = int(sidecar["ports"][0]["containerPort"])
    log = tmp_path / "sidecar.log"
    lines = [reconcile_error(1), "not JSON: skipped", reconcile_error(2), reconcile_error(3)]

    prometheus = start_prometheus(port, tmp_path / "prometheus")
    proc = container.start(log)
    try:
        wait_ready(port, proc, log)
        if source == "log-path":
            # The controller's mount of the shared emptyDir, and the folder the kubelet maps.
            assert any(m["mountPath"] == LOG_DIR for m in controller["volumeMounts"])
            [folder] = [local for local, path in container.mounts if path == LOG_DIR]
            with (folder / "controller.log").open("a") as out:
                out.writelines(line + "\n" for line in lines)
        else:
            assert {"name": "EVENT_SIDECAR_SOCKET", "value": value} in controller["env"]
            write_to_socket(value, *lines)
        assert wait_for_total(cp, 3) == [3]
        described = cp.kubectl(
            "describe", f"resourcequotaautoscalers.{RQA_GROUP}", "team-a", "-n", NAMESPACE
        ).stdout
        assert "ReconcileError" in described and "exceeded ceiling" in described
        table = cp.kubectl("get", "events", "-n", NAMESPACE).stdout
        [row] = [line for line in table.splitlines() if "ReconcileError" in line]
        assert "resourcequotaautoscaler/team-a" in row
        wait_scraped(prometheus, {"ReconcileError": 3})
    finally:
        prometheus.stop()
        proc.terminate()
        proc.wait(30)
