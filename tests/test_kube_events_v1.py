"""events.k8s.io/v1 mode against a real kube-apiserver: series Events as kubectl shows them,
`kubectl describe` on a custom resource, RBAC on events.k8s.io only, and `auto`'s fallback to
core/v1 when only core/v1 is allowed."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from kubernetes import client

from sidecar.core.correlate import Correlator, CorrelatorSettings
from sidecar.core.events.corev1 import EventNamer
from sidecar.core.events.eventsv1 import micro_time
from sidecar.core.events.series import SeriesCache
from sidecar.kube import KubeSink, connect
from sidecar.model import EventSpec, ObjectTarget
from sidecar.recording.recorder_eventsv1 import ModernRecorder
from sidecar.runtime.metrics import Metrics
from tests.controlplane import ControlPlane
from tests.kube_support import (  # noqa: F401 - rqa_crd is a fixture
    COMPONENT,
    HOST,
    _create_pod,
    _create_rqa,
    _metrics,
    _table,
    _wide_events,
    rqa_crd,
)

#: Half an hour ago, in whole seconds: kubectl shows ages, and a future time as <invalid>.
T0 = float(int(time.time()) - 1800)


class _Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def _recorder(sink: KubeSink, metrics: Metrics, clock: _Clock) -> ModernRecorder:
    namer = EventNamer()
    return ModernRecorder(
        series=SeriesCache(),
        sink=sink,
        correlator=Correlator(CorrelatorSettings(), namer),
        namer=namer,
        metrics=metrics,
        component=COMPONENT,
        host=HOST,
        clock=clock,
    )


def _spec(target: ObjectTarget, message: str, related: ObjectTarget | None = None) -> EventSpec:
    return EventSpec(
        "test-rule", target, "Warning", "QuotaNearlyExhausted", message, None, "Checking", related
    )


def _modern_events(control_plane: ControlPlane, namespace: str) -> list[dict[str, Any]]:
    out = control_plane.kubectl(
        "get", "events.v1.events.k8s.io", "-n", namespace, "-o", "json"
    ).stdout
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


def test_a_series_shows_its_count_last_seen_and_source_in_kubectl(
    control_plane: ControlPlane, kube_api_client: client.ApiClient, namespace: str
) -> None:
    pod_uid, _ = _create_pod(kube_api_client, namespace, "web-0")
    _create_pod(kube_api_client, namespace, "web-1")
    _, metrics = _metrics()
    clock = _Clock()
    web0 = ObjectTarget("Pod", "web-0", namespace)
    related = ObjectTarget("Pod", "web-1", namespace)
    with connect(kubeconfig=str(control_plane.kubeconfig), metrics=metrics) as sink:
        recorder = _recorder(sink, metrics, clock)
        outcomes = []
        for index in range(4):
            clock.now = T0 + index * 60
            outcomes.append(recorder.record(_spec(web0, f"at 9{index}%", related)))
        assert outcomes == ["create", "patch", "series", "series"]
        [stored] = _modern_events(control_plane, namespace)
        assert stored["series"]["count"] == 2
        assert recorder.flush() == 1

    [stored] = _modern_events(control_plane, namespace)
    assert stored["series"] == {"count": 4, "lastObservedTime": micro_time(T0 + 180)}
    assert stored["eventTime"] == micro_time(T0)
    assert stored["note"] == "at 90%"
    assert stored["action"] == "Checking"
    assert stored["reportingController"] == COMPONENT
    assert stored["reportingInstance"] == f"{COMPONENT}-{HOST}"
    assert stored["regarding"]["uid"] == pod_uid
    assert stored["related"]["name"] == "web-1"
    assert re.fullmatch(r"web-0\.[0-9a-f]+", stored["metadata"]["name"])

    before = time.time()
    [row] = _wide_events(control_plane, namespace)
    minutes = range(int(before - T0) // 60, int(time.time() - T0) // 60 + 1)
    assert row["COUNT"] == "4"
    assert row["OBJECT"] == "pod/web-0"
    assert row["SOURCE"] == f"{COMPONENT}, {COMPONENT}-{HOST}"
    # LAST SEEN is the series' lastObservedTime, FIRST SEEN the eventTime: 3 minutes apart (T0 is
    # 30 minutes before the tests were collected; a long suite runs them later).
    assert (row["FIRST SEEN"], row["LAST SEEN"]) in [(f"{m}m", f"{m - 3}m") for m in minutes]
    [row] = _table(control_plane.kubectl("events", "-n", namespace, "--for", "pod/web-0").stdout)
    assert (row["REASON"], row["MESSAGE"]) == ("QuotaNearlyExhausted", "at 90%")
    assert "x4 over" in row["LAST SEEN"]


def test_a_series_on_a_custom_resource_shows_in_kubectl_describe(
    control_plane: ControlPlane,
    kube_api_client: client.ApiClient,
    rqa_crd: str,  # noqa: F811
    namespace: str,
) -> None:
    _create_rqa(kube_api_client, namespace, "team-a")
    _, metrics = _metrics()
    clock = _Clock()
    target = ObjectTarget("ResourceQuotaAutoscaler", "team-a", namespace, "", rqa_crd)
    with connect(kubeconfig=str(control_plane.kubeconfig), metrics=metrics) as sink:
        recorder = _recorder(sink, metrics, clock)
        for index in range(3):
            clock.now = T0 + index
            recorder.record(_spec(target, "quota compute at its ceiling"))
        recorder.flush()
    described = control_plane.kubectl(
        "describe", "resourcequotaautoscaler", "team-a", "-n", namespace
    ).stdout
    events_section = described.split("\nEvents:", 1)[1]
    assert re.search(
        rf"Warning\s+QuotaNearlyExhausted\s+.*\(x3 over .*\)\s+{COMPONENT}\s+quota compute",
        events_section,
    ), events_section


def _service_account(
    control_plane: ControlPlane, api: client.ApiClient, namespace: str, group: str, tmp_path: Path
) -> Path:
    """A ServiceAccount allowed to create and patch events in `group` only (and get pods);
    return a kubeconfig with its token."""
    manifest = f"""
apiVersion: v1
kind: ServiceAccount
metadata: {{name: only-{group or "core"}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: only-{group or "core"}}}
rules:
  - {{apiGroups: ["{group}"], resources: [events], verbs: [create, patch]}}
  - {{apiGroups: [""], resources: [pods], verbs: [get]}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: only-{group or "core"}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: only-{group or "core"}}}
subjects: [{{kind: ServiceAccount, name: only-{group or "core"}, namespace: {namespace}}}]
"""
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=manifest)
    token = client.CoreV1Api(api).create_namespaced_service_account_token(
        f"only-{group or 'core'}",
        namespace,
        client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[])),
    )
    assert token.status is not None
    return control_plane.token_kubeconfig(
        str(token.status.token), tmp_path / f"{group or 'core'}.kubeconfig"
    )


def test_rbac_on_events_k8s_io_only_is_enough_and_auto_chooses_it(
    control_plane: ControlPlane, kube_api_client: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    kubeconfig = _service_account(
        control_plane, kube_api_client, namespace, "events.k8s.io", tmp_path
    )
    _create_pod(kube_api_client, namespace, "web-0")
    _, metrics = _metrics()
    clock = _Clock()
    with connect(kubeconfig=str(kubeconfig), metrics=metrics) as sink:
        chosen, why = sink.choose_events_api(namespace)
        assert chosen == "events.k8s.io/v1", why
        recorder = _recorder(sink, metrics, clock)
        target = ObjectTarget("Pod", "web-0", namespace)
        assert [recorder.record(_spec(target, "at 97%")) for _ in range(2)] == ["create", "patch"]
    [stored] = _modern_events(control_plane, namespace)
    assert stored["series"]["count"] == 2


def test_auto_falls_back_to_core_v1_when_only_core_v1_is_allowed(
    control_plane: ControlPlane, kube_api_client: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    kubeconfig = _service_account(control_plane, kube_api_client, namespace, "", tmp_path)
    _, metrics = _metrics()
    with connect(kubeconfig=str(kubeconfig), metrics=metrics) as sink:
        chosen, why = sink.choose_events_api(namespace)
    assert chosen == "v1"
    assert "not allowed to create events.k8s.io events" in why
