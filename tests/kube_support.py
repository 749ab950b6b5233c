"""What the tests of `sidecar.kube` against a real kube-apiserver share: the recorder and
sink they drive, the objects they make (a Pod, a custom resource and its CRD), the sidecar's
RBAC, and readers of the API's answers and metrics."""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from prometheus_client import CollectorRegistry

from sidecar.core.correlate import Correlator, CorrelatorSettings
from sidecar.core.events.corev1 import Event, EventNamer, InvolvedObject
from sidecar.kube import KubeSettings, KubeSink, connect
from sidecar.model import EventSpec, ObjectTarget, RetrySettings
from sidecar.recording.recorder import Recorder
from sidecar.runtime.metrics import Metrics
from tests.controlplane import REPO_ROOT, ControlPlane

COMPONENT = "legacy-quota-controller"
HOST = "legacy-quota-controller-7d9f8-x2x4q"
RBAC_DIR = REPO_ROOT / "manifests" / "sidecar-rbac"
RQA_GROUP = "autoscaling.example.com"
KUBE_DEFAULTS = KubeSettings()
CORRELATOR_DEFAULTS = CorrelatorSettings()
RETRY_DEFAULTS = RetrySettings()
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def _crd(group: str, kind: str) -> str:
    """A namespaced CRD serving v1beta1 and v1, so that "the preferred version" means something:
    discovery prefers v1."""
    plural = kind.lower() + "s"
    schema = "openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}"
    return f"""
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {plural}.{group}
spec:
  group: {group}
  scope: Namespaced
  names: {{kind: {kind}, plural: {plural}, singular: {kind.lower()}}}
  versions:
    - {{name: v1beta1, served: true, storage: false, schema: {{{schema}}}}}
    - {{name: v1, served: true, storage: true, schema: {{{schema}}}}}
"""


# -- helpers -----------------------------------------------------------------------------------


def _metrics() -> tuple[CollectorRegistry, Metrics]:
    registry = CollectorRegistry()
    return registry, Metrics(registry)


def _sink(
    control_plane: ControlPlane, metrics: Metrics, settings: KubeSettings = KUBE_DEFAULTS
) -> KubeSink:
    return connect(kubeconfig=str(control_plane.kubeconfig), metrics=metrics, settings=settings)


def _recorder(
    sink: Any,
    metrics: Metrics,
    *,
    settings: CorrelatorSettings = CORRELATOR_DEFAULTS,
    clock: Callable[[], float] = time.time,
    retry: RetrySettings = RETRY_DEFAULTS,
    sleep: Callable[[float], None] = time.sleep,
) -> Recorder:
    namer = EventNamer()
    return Recorder(
        sink=sink,
        correlator=Correlator(settings, namer),
        namer=namer,
        metrics=metrics,
        component=COMPONENT,
        host=HOST,
        clock=clock,
        retry=retry,
        sleep=sleep,
    )


def _spec(
    target: ObjectTarget,
    message: str = "quota compute is at 97% of its cpu limit",
    *,
    reason: str = "QuotaNearlyExhausted",
    type: str = "Warning",
) -> EventSpec:
    return EventSpec("test-rule", target, type, reason, message, None)


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def _dropped(registry: CollectorRegistry, cause: str) -> float:
    return _sample(registry, "event_sidecar_events_dropped_total", cause=cause)


def _lookups(registry: CollectorRegistry, result: str) -> float:
    return _sample(registry, "event_sidecar_object_lookups_total", result=result)


def _requests(registry: CollectorRegistry, verb: str, result: str) -> float:
    return _sample(
        registry, "event_sidecar_api_request_duration_seconds_count", verb=verb, result=result
    )


def _events(control_plane: ControlPlane, namespace: str, *selector: str) -> list[dict[str, Any]]:
    """The namespace's Events exactly as the API serves them (JSON, not the client's models)."""
    out = control_plane.kubectl("get", "events", "-n", namespace, "-o", "json", *selector).stdout
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


def _table(text: str) -> list[dict[str, str]]:
    """kubectl's column output as one dict per row, cut at the header's column offsets."""
    lines = [line for line in text.splitlines() if line.strip()]
    header = lines[0]
    columns = [(m.group(), m.start()) for m in re.finditer(r"\S+(?: \S+)*", header)]
    rows = []
    for line in lines[1:]:
        row = {}
        for index, (name, start) in enumerate(columns):
            end = columns[index + 1][1] if index + 1 < len(columns) else None
            row[name] = line[start:end].strip()
        rows.append(row)
    return rows


def _wide_events(control_plane: ControlPlane, namespace: str, *args: str) -> list[dict[str, str]]:
    return _table(
        control_plane.kubectl("get", "events", "-n", namespace, "-o", "wide", *args).stdout
    )


def _wait(what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _served(control_plane: ControlPlane, path: str) -> bool:
    return control_plane.kubectl("get", "--raw", path, check=False).returncode == 0


def _identity(stored: Any) -> tuple[str, str]:
    """(uid, resourceVersion) of an object the API returned."""
    metadata = stored.metadata
    assert metadata is not None
    return str(metadata.uid), str(metadata.resource_version)


def _create_pod(api: client.ApiClient, namespace: str, name: str) -> tuple[str, str]:
    """A Pod stored by the apiserver (there is no scheduler or kubelet: it stays Pending);
    returns its uid and resourceVersion."""
    pod = client.CoreV1Api(api).create_namespaced_pod(
        namespace,
        client.V1Pod(
            metadata=client.V1ObjectMeta(name=name),
            spec=client.V1PodSpec(containers=[client.V1Container(name="app", image="busybox")]),
        ),
    )
    return _identity(pod)


def _apply(control_plane: ControlPlane, manifest: str, *args: str) -> None:
    control_plane.kubectl("apply", *args, "-f", "-", input=manifest)


def _event(involved: InvolvedObject, message: str = "settings reloaded") -> Event:
    """An Event as `make_event` builds it, for calling the sink directly."""
    now = time.time()
    return Event(
        name=f"{involved.name}.{time.time_ns():x}",
        namespace=involved.namespace or "default",
        involved=involved,
        type="Normal",
        reason="Reloaded",
        message=message,
        first_timestamp=now,
        last_timestamp=now,
        count=1,
        component=COMPONENT,
        host=HOST,
    )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture(scope="session")
def rqa_crd(control_plane: ControlPlane) -> str:
    """The example CRD resourcequotaautoscalers.autoscaling.example.com, installed and served."""
    _apply(control_plane, _crd(RQA_GROUP, "ResourceQuotaAutoscaler"))
    control_plane.kubectl(
        "wait", "--for=condition=established", "--timeout=30s",
        f"crd/resourcequotaautoscalers.{RQA_GROUP}",
    )  # fmt: skip
    _wait("the CRD in discovery", lambda: _served(control_plane, f"/apis/{RQA_GROUP}/v1"))
    return RQA_GROUP


def _create_custom(
    api: client.ApiClient, group: str, kind: str, namespace: str, name: str, **spec: str
) -> str:
    """Create a custom resource (v1) through the API; return its uid.

    Not with `kubectl apply`: right after a CRD appears, kubectl spends ~2 s re-discovering and
    waiting for the new kind's OpenAPI schema."""
    stored: Any = client.CustomObjectsApi(api).create_namespaced_custom_object(
        group,
        "v1",
        namespace,
        kind.lower() + "s",
        {"apiVersion": f"{group}/v1", "kind": kind, "metadata": {"name": name}, "spec": spec},
    )
    return str(stored["metadata"]["uid"])


def _create_rqa(api: client.ApiClient, namespace: str, name: str) -> str:
    return _create_custom(
        api, RQA_GROUP, "ResourceQuotaAutoscaler", namespace, name, quota="compute", maxCpu="16"
    )


def install_sidecar_rbac(
    control_plane: ControlPlane, api: client.ApiClient, namespace: str, tmp_path: Path
) -> str:
    """Apply manifests/sidecar-rbac for a sidecar in `namespace` (through an overlay, as its
    kustomization documents); return a token of its ServiceAccount from the TokenRequest API."""
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"namespace: {namespace}\nresources:\n  - {os.path.relpath(RBAC_DIR, overlay)}\n"
    )
    control_plane.kubectl("apply", "-k", str(overlay))
    token_request = client.CoreV1Api(api).create_namespaced_service_account_token(
        "event-sidecar",
        namespace,
        client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[])),
    )
    assert token_request.status is not None
    return str(token_request.status.token)
