"""A sidecar that cannot read its source for good says so where users look.

Its log file never appears, or the API refuses `pods/log` (403: an RBAC without the grant, on a
real kube-apiserver): `/healthz` stays 200 (restarting would not help), but the readiness probe
the injection gives it fails, `event_sidecar_source_unreadable{reason}` is 1, and its own pod gets
one Warning Event `SourceUnreadable` however often the source retries; once it reads again, a
Normal `SourceReadable` Event, the gauge back to 0 and the pod ready.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from prometheus_client import CollectorRegistry

from sidecar.core.events.corev1 import Event
from sidecar.core.rules import load_rules
from sidecar.core.settings import DaemonSettings, FileSettings, HttpSettings, PodLogSettings
from sidecar.daemon.service import Daemon
from sidecar.inject.patch import READINESS_PATH
from sidecar.runtime.metrics import Metrics
from sidecar.runtime.sinks import MemorySink
from tests.controlplane import ControlPlane
from tests.daemon_support import Sidecar, events, wait_for, write_rules

#: Seconds of failing reads before the sidecar says so (60 by default).
AFTER = 1.0


async def get(http: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, Any] | None]:
    async with http.get(url) as response:
        body = await response.read()
        return response.status, orjson.loads(body) if body.startswith(b"{") else None


def on_the_pod(sink: MemorySink, reason: str) -> list[Event]:
    return [
        event
        for event in sink.events.values()
        if event.reason == reason and (event.involved.kind, event.involved.name) == ("Pod", "ctl-0")
    ]


async def test_a_missing_log_file_is_said_where_users_look(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "app.log"
    log.parent.mkdir()
    rules = write_rules(tmp_path)
    registry, sink = CollectorRegistry(), MemorySink()
    daemon = Daemon(
        load_rules(rules),
        sink,
        DaemonSettings(
            host="ctl-0",
            http=HttpSettings(host="127.0.0.1", port=0, unreadable_seconds=AFTER),
            files=FileSettings(paths=(str(log),), poll_interval=0.05, watch="poll"),
            pod_log=PodLogSettings(pod="ctl-0", namespace="team"),
        ),
        Metrics(registry),
    )
    running = asyncio.create_task(daemon.run())
    missing = {"source": "file", "reason": "missing"}
    gauge = "event_sidecar_source_unreadable"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        deadline = time.monotonic() + 30
        while not on_the_pod(sink, "SourceUnreadable"):
            assert time.monotonic() < deadline, "no SourceUnreadable Event"
            await asyncio.sleep(0.05)
        base = f"http://127.0.0.1:{daemon.http_port}"
        [warning] = on_the_pod(sink, "SourceUnreadable")
        assert warning.type == "Warning" and warning.involved.namespace == "team"
        assert f"no file matches {log}" in warning.message
        assert registry.get_sample_value(gauge, missing) == 1.0
        assert (await get(http, f"{base}/healthz"))[0] == 200  # a restart would not help
        status, body = await get(http, base + READINESS_PATH)
        assert status == 503 and body is not None
        assert body["checks"] == {"sources_readable": False, "rules": True}
        # Retried for three times as long: still one Event, not one per retry.
        await asyncio.sleep(3 * AFTER)
        assert len(on_the_pod(sink, "SourceUnreadable")) == 1
        assert on_the_pod(sink, "SourceUnreadable")[0].count == 1

        log.write_text("")
        while not on_the_pod(sink, "SourceReadable"):
            assert time.monotonic() < deadline, "no SourceReadable Event"
            await asyncio.sleep(0.05)
        assert on_the_pod(sink, "SourceReadable")[0].type == "Normal"
        assert registry.get_sample_value(gauge, missing) == 0.0
        assert (await get(http, base + READINESS_PATH))[0] == 200
    daemon.stop()
    assert await asyncio.wait_for(running, 15) == 0


POD = "ctl-0"
CONTAINER = "manager"


def rbac_without_pod_logs(namespace: str) -> list[dict[str, Any]]:
    """What the sidecar needs to write Events and read its pod, but not `pods/log`."""
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sidecar"}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "sidecar"},
            "rules": [
                {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "sidecar"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "sidecar"},
            "subjects": [{"kind": "ServiceAccount", "name": "sidecar", "namespace": namespace}],
        },
    ]


def running_pod(control_plane: ControlPlane, namespace: str) -> None:
    """A stored pod whose container runs (no kubelet: its status is written as one would)."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": POD, "namespace": namespace},
        "spec": {"containers": [{"name": CONTAINER, "image": "controller:1"}]},
    }
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(pod))
    status = {
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": CONTAINER,
                    "image": "controller:1",
                    "imageID": "",
                    "containerID": f"containerd://{uuid.uuid4().hex}",
                    "ready": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
                }
            ],
        }
    }
    control_plane.kubectl(
        "patch", "pod", POD, "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps(status),
    )  # fmt: skip


def pod_events(control_plane: ControlPlane, namespace: str, reason: str) -> list[dict[str, Any]]:
    return [
        item
        for item in events(control_plane, namespace)
        if item["reason"] == reason and item["involvedObject"]["kind"] == "Pod"
    ]


def test_a_403_on_pods_log_is_said_on_the_pod(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    for document in rbac_without_pod_logs(namespace):
        control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(document))
    running_pod(control_plane, namespace)
    token = control_plane.kubectl("create", "token", "sidecar", "-n", namespace).stdout.strip()
    kubeconfig = control_plane.token_kubeconfig(token, tmp_path / "sidecar.kubeconfig")
    args = [
        "--rules", str(write_rules(tmp_path)), "--kubeconfig", str(kubeconfig),
        "--pod-log", CONTAINER,
    ]  # fmt: skip
    # Set the way a user would; a version without the setting ignores the variable.
    env = {"POD_NAME": POD, "POD_NAMESPACE": namespace, "SIDECAR_UNREADABLE_SECONDS": "2"}
    process = Sidecar(args, tmp_path, env=env)
    try:
        process.start(wait_ready=False)
        process.port = wait_for(process._started, "the sidecar to start", timeout=20)
        [warning] = wait_for(
            lambda: pod_events(control_plane, namespace, "SourceUnreadable"),
            "a SourceUnreadable Event on the pod",
            timeout=60,
        )
        assert warning["type"] == "Warning"
        assert warning["involvedObject"]["name"] == POD
        assert "forbidden" in warning["message"] and "pods/log" in warning["message"]
        forbidden = {"source": "pod-log", "reason": "forbidden"}
        assert process.metric("event_sidecar_source_unreadable", **forbidden) == 1
        assert http_status(process, "/healthz") == 200
        assert http_status(process, READINESS_PATH) == 503
        # The source keeps retrying (backoff up to 30 s); the Event stays one, written once.
        time.sleep(8)
        [again] = pod_events(control_plane, namespace, "SourceUnreadable")
        assert again["count"] == 1
        assert process.metric("event_sidecar_pod_log_reconnects_total") >= 2

        # The grant arrives: the pod is not on a node, so the API answers with no log (204),
        # which is a readable source.
        grant = {
            "apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"],
        }  # fmt: skip
        control_plane.kubectl(
            "patch", "role", "sidecar", "-n", namespace, "--type=json",
            "-p", json.dumps([{"op": "add", "path": "/rules/-", "value": grant}]),
        )  # fmt: skip
        wait_for(
            lambda: pod_events(control_plane, namespace, "SourceReadable"),
            "a SourceReadable Event on the pod",
            timeout=90,
        )
        assert process.metric("event_sidecar_source_unreadable", **forbidden) == 0
        assert http_status(process, READINESS_PATH) == 200
        assert process.terminate(timeout=30) == 0
    finally:
        process.close()


def http_status(process: Sidecar, path: str) -> int:
    from tests.daemon_support import http_get  # noqa: PLC0415

    return http_get(process.url(path))[0]
