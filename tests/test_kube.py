"""`sidecar.kube` against a real kube-apiserver: Events as client-go writes them, look-ups,
correlation over the wire, least-privilege RBAC, and every way a write can fail.

Every test drives the real path (Recorder -> KubeSink -> apiserver) and reads the result back
from the API or with the built kubectl, so what is asserted is what users will see.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.config import incluster_config
from prometheus_client import CollectorRegistry

from sidecar.core.correlate import AGGREGATE_PREFIX, Correlator, CorrelatorSettings
from sidecar.core.events.corev1 import Event, EventNamer, InvolvedObject
from sidecar.kube import STRATEGIC_MERGE_PATCH, KubeConfigError, KubeSettings, KubeSink, connect
from sidecar.model import EventSpec, ObjectTarget, RetrySettings
from sidecar.recording.recorder import Recorder
from sidecar.recording.steps import drive_async
from sidecar.runtime.metrics import Metrics
from sidecar.runtime.sinks import NotFound, Refused, Send, Unreachable
from tests.conftest import Capture
from tests.controlplane import REPO_ROOT, ControlPlane, token_kubeconfig
from tests.sidecar_rbac import assert_sidecar_grants

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


# -- a new Event -------------------------------------------------------------------------------


def test_pod_event_has_every_field_client_go_writes(
    control_plane: ControlPlane, kube_api_client: client.ApiClient, namespace: str
) -> None:
    pod_uid, pod_version = _create_pod(kube_api_client, namespace, "web-0")
    registry, metrics = _metrics()
    with _sink(control_plane, metrics) as sink:
        recorder = _recorder(sink, metrics)
        before = time.time_ns()
        # The rules gave no apiVersion: discovery finds Pod in the core group.
        assert recorder.record(_spec(ObjectTarget("Pod", "web-0", namespace))) == "create"
        after = time.time_ns()

    [event] = _events(control_plane, namespace)
    name = event["metadata"]["name"]
    match = re.fullmatch(r"web-0\.([0-9a-f]+)", name)
    assert match, name
    assert before <= int(match.group(1), 16) <= after
    assert event["metadata"]["namespace"] == namespace
    assert event["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": "web-0",
        "namespace": namespace,
        "uid": pod_uid,
        "resourceVersion": pod_version,
    }
    assert event["type"] == "Warning"
    assert event["reason"] == "QuotaNearlyExhausted"
    assert event["message"] == "quota compute is at 97% of its cpu limit"
    assert event["count"] == 1
    assert TIMESTAMP.fullmatch(event["firstTimestamp"])
    assert event["firstTimestamp"] == event["lastTimestamp"]
    assert event["source"] == {"component": COMPONENT, "host": HOST}
    assert event["reportingComponent"] == COMPONENT
    assert event["reportingInstance"] == HOST
    # eventTime unset keeps the legacy validation; action and series stay unset with it.
    assert event.get("eventTime") is None
    assert "action" not in event
    assert "series" not in event

    [row] = _wide_events(control_plane, namespace)
    assert row["TYPE"] == "Warning"
    assert row["REASON"] == "QuotaNearlyExhausted"
    assert row["OBJECT"] == "pod/web-0"
    assert row["MESSAGE"] == "quota compute is at 97% of its cpu limit"
    assert row["SOURCE"] == f"{COMPONENT}, {HOST}"
    assert row["COUNT"] == "1"
    assert row["NAME"] == name

    # The live uid is what makes `kubectl describe` list the Event.
    described = control_plane.kubectl("describe", "pod", "web-0", "-n", namespace).stdout
    events_section = described.split("\nEvents:", 1)[1]
    assert re.search(
        rf"Warning\s+QuotaNearlyExhausted\s+\S+\s+{COMPONENT}\s+quota compute is at 97%",
        events_section,
    ), events_section

    assert _lookups(registry, "found") == 1
    assert (
        _sample(
            registry,
            "event_sidecar_events_emitted_total",
            reason="QuotaNearlyExhausted",
            type="Warning",
            write="create",
        )
        == 1
    )
    assert _requests(registry, "create", "201") == 1


def test_a_uid_from_the_line_is_written_without_a_look_up(
    control_plane: ControlPlane, kube_api_client: client.ApiClient, namespace: str
) -> None:
    pod_uid, _ = _create_pod(kube_api_client, namespace, "web-1")
    registry, metrics = _metrics()
    with _sink(control_plane, metrics) as sink:
        recorder = _recorder(sink, metrics)
        # A rule's `uid:` (or a reference carrying one) gave the uid: nothing to ask.
        target = ObjectTarget("Pod", "web-1", namespace, uid=pod_uid)
        assert recorder.record(_spec(target)) == "create"

    [event] = _events(control_plane, namespace)
    assert event["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": "web-1",
        "namespace": namespace,
        "uid": pod_uid,
    }
    described = control_plane.kubectl("describe", "pod", "web-1", "-n", namespace).stdout
    assert "QuotaNearlyExhausted" in described.split("\nEvents:", 1)[1], described
    assert (_lookups(registry, "found"), _lookups(registry, "hit")) == (0, 1)
    assert _requests(registry, "get", "200") == 0


def test_custom_resource_event_shows_in_kubectl_describe(
    control_plane: ControlPlane, kube_api_client: client.ApiClient, rqa_crd: str, namespace: str
) -> None:
    uid = _create_rqa(kube_api_client, namespace, "team-a")
    registry, metrics = _metrics()
    with _sink(control_plane, metrics) as sink:
        recorder = _recorder(sink, metrics)
        target = ObjectTarget("ResourceQuotaAutoscaler", "team-a", namespace, "", rqa_crd)
        message = "raised quota compute to 12 cpu"
        assert recorder.record(_spec(target, message, reason="QuotaRaised", type="Normal")) == (
            "create"
        )

        # Without a group either: every group is searched; the answer is the same object.
        anywhere = sink.resolve(ObjectTarget("ResourceQuotaAutoscaler", "team-a", namespace))
        assert anywhere == InvolvedObject(
            kind="ResourceQuotaAutoscaler",
            name="team-a",
            namespace=namespace,
            api_version=f"{rqa_crd}/v1",
            uid=uid,
            resource_version=anywhere.resource_version,
        )
        assert anywhere.resource_version
        assert _lookups(registry, "found") == 2

    [event] = _events(control_plane, namespace)
    # v1beta1 is served too; discovery's preferred version is v1.
    assert event["involvedObject"]["apiVersion"] == f"{rqa_crd}/v1"
    assert event["involvedObject"]["uid"] == uid

    described = control_plane.kubectl(
        "describe", "resourcequotaautoscaler", "team-a", "-n", namespace
    ).stdout
    events_section = described.split("\nEvents:", 1)[1]
    assert re.search(rf"Normal\s+QuotaRaised\s+\S+\s+{COMPONENT}\s+{message}", events_section), (
        described
    )
    # `kubectl events --for` matches kind, name and the preferred apiVersion.
    [row] = _table(
        control_plane.kubectl(
            "events", "-n", namespace, "--for", "resourcequotaautoscaler/team-a"
        ).stdout
    )
    assert (row["REASON"], row["MESSAGE"]) == ("QuotaRaised", message)


def test_kind_from_a_crd_installed_later_is_found_by_rediscovery(
    control_plane: ControlPlane, kube_api_client: client.ApiClient, namespace: str
) -> None:
    group = "late.example.com"
    registry, metrics = _metrics()
    with _sink(control_plane, metrics, KubeSettings(rediscover_interval=0)) as sink:
        target = ObjectTarget("Gadget", "g1", namespace, "", group)
        unknown = sink.resolve(target)
        assert (unknown.uid, unknown.api_version) == ("", "")
        assert _lookups(registry, "unknown_kind") == 1

        _apply(control_plane, _crd(group, "Gadget"))
        _wait("the late CRD in discovery", lambda: _served(control_plane, f"/apis/{group}/v1"))
        uid = _create_custom(kube_api_client, group, "Gadget", namespace, "g1")

        found = sink.resolve(target)
        assert (found.uid, found.api_version, found.kind) == (uid, f"{group}/v1", "Gadget")
        assert _lookups(registry, "found") == 1


def test_cluster_scoped_object_gets_its_event_in_default(
    control_plane: ControlPlane, kube_api_client: client.ApiClient
) -> None:
    node_name = f"node-{uuid.uuid4().hex[:8]}"
    node_uid, node_version = _identity(
        client.CoreV1Api(kube_api_client).create_node(
            client.V1Node(metadata=client.V1ObjectMeta(name=node_name))
        )
    )
    _, metrics = _metrics()
    with _sink(control_plane, metrics) as sink:
        recorder = _recorder(sink, metrics)
        # A namespace given by mistake is dropped: Node is cluster-scoped, discovery says so.
        target = ObjectTarget("Node", node_name, "somewhere")
        assert recorder.record(_spec(target, "node pool quota low", reason="NodeQuotaLow")) == (
            "create"
        )
        role = sink.resolve(
            ObjectTarget("ClusterRole", "admin", "", "", "rbac.authorization.k8s.io")
        )
        assert (role.namespace, role.api_version) == ("", "rbac.authorization.k8s.io/v1")
        assert role.uid

    [event] = _events(control_plane, "default", f"--field-selector=involvedObject.name={node_name}")
    assert event["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "Node",
        "name": node_name,
        "uid": node_uid,
        "resourceVersion": node_version,
    }
    described = control_plane.kubectl("describe", "node", node_name).stdout
    assert re.search(r"Warning\s+NodeQuotaLow\s+\S+\s+\S+\s+node pool quota low", described)


# -- repeats, aggregation and the spam filter over the wire -----------------------------------


def test_repeats_patch_one_event_and_recreate_it_after_deletion(
    control_plane: ControlPlane, kube_api_client: client.ApiClient, namespace: str
) -> None:
    _create_pod(kube_api_client, namespace, "worker-1")
    registry, metrics = _metrics()
    with _sink(control_plane, metrics) as sink:
        recorder = _recorder(sink, metrics)
        spec = _spec(ObjectTarget("Pod", "worker-1", namespace))
        assert [recorder.record(spec) for _ in range(3)] == ["create", "patch", "patch"]

        [row] = _wide_events(control_plane, namespace)
        assert (row["OBJECT"], row["REASON"], row["COUNT"]) == (
            "pod/worker-1",
            "QuotaNearlyExhausted",
            "3",
        )
        [event] = _events(control_plane, namespace)
        assert event["count"] == 3

        # The Event expires (--event-ttl) or is deleted: the next repeat's PATCH gets 404, and
        # the Event is re-created under the same name with the cumulative count.
        control_plane.kubectl("delete", "event", row["NAME"], "-n", namespace)
        assert recorder.record(spec) == "create"

    [again] = _events(control_plane, namespace)
    assert again["metadata"]["name"] == row["NAME"]
    assert again["count"] == 4
    assert again["firstTimestamp"] == event["firstTimestamp"]
    assert again["involvedObject"]["uid"] == event["involvedObject"]["uid"]
    assert _requests(registry, "patch", "200") == 2
    assert _requests(registry, "patch", "404") == 1
    assert _requests(registry, "create", "201") == 2


def test_tenth_distinct_message_is_aggregated_and_patched(
    control_plane: ControlPlane, kube_api_client: client.ApiClient, namespace: str
) -> None:
    _create_pod(kube_api_client, namespace, "batch-0")
    registry, metrics = _metrics()
    with _sink(control_plane, metrics) as sink:
        recorder = _recorder(sink, metrics)
        target = ObjectTarget("Pod", "batch-0", namespace)
        results = [recorder.record(_spec(target, f"cpu usage {n} of 16")) for n in range(1, 13)]

    # 9 distinct messages are written as they are; the 10th starts the combined Event, which the
    # 11th and 12th PATCH.
    assert results == ["create"] * 10 + ["patch"] * 2
    events = _events(control_plane, namespace)
    assert len(events) == 10
    combined = [e for e in events if e["message"].startswith(AGGREGATE_PREFIX)]
    assert [(e["message"], e["count"]) for e in combined] == [
        (f"{AGGREGATE_PREFIX}cpu usage 12 of 16", 3)
    ]
    assert sorted(e["message"] for e in events if e not in combined) == sorted(
        f"cpu usage {n} of 16" for n in range(1, 10)
    )
    [row] = [
        r
        for r in _wide_events(control_plane, namespace)
        if r["NAME"] == combined[0]["metadata"]["name"]
    ]
    assert row["COUNT"] == "3"
    assert row["MESSAGE"] == f"{AGGREGATE_PREFIX}cpu usage 12 of 16"
    assert (
        _sample(registry, "event_sidecar_events_aggregated_total", reason="QuotaNearlyExhausted")
        == 3
    )


def test_spam_filter_stops_a_burst_after_25_and_counts_the_rest(
    control_plane: ControlPlane, kube_api_client: client.ApiClient, namespace: str
) -> None:
    _create_pod(kube_api_client, namespace, "noisy-0")
    registry, metrics = _metrics()
    now = float(int(time.time()))
    with _sink(control_plane, metrics) as sink:
        # Aggregation out of the way, and a frozen clock: no token is refilled during the burst.
        recorder = _recorder(
            sink, metrics, settings=CorrelatorSettings(max_similar_events=1000), clock=lambda: now
        )
        target = ObjectTarget("Pod", "noisy-0", namespace)
        results = [recorder.record(_spec(target, f"sync attempt {n}")) for n in range(30)]

    assert results == ["create"] * 25 + ["spam_filter"] * 5
    events = _events(control_plane, namespace)
    assert sorted(e["message"] for e in events) == sorted(f"sync attempt {n}" for n in range(25))
    assert _dropped(registry, "spam_filter") == 5
    assert _requests(registry, "create", "201") == 25


# -- RBAC --------------------------------------------------------------------------------------


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


# -- failures ----------------------------------------------------------------------------------


@dataclasses.dataclass
class _Misfiling:
    """Delegates to a sink but files every Event under `namespace`, whatever its object's."""

    sink: KubeSink
    namespace: str

    def resolve(self, target: ObjectTarget) -> InvolvedObject:
        return self.sink.resolve(target)

    def create(self, event: Event) -> None:
        self.sink.create(dataclasses.replace(event, namespace=self.namespace))

    def patch(self, event: Event, patch: dict[str, Any]) -> None:
        self.sink.patch(dataclasses.replace(event, namespace=self.namespace), patch)


def test_refusals_are_final_and_counted_by_cause(
    control_plane: ControlPlane, kube_api_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube_api_client)
    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="quota-settings"))
    )
    # No controller-manager: a deleted namespace stays Terminating for good.
    terminating = f"terminating-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=terminating)))
    core.delete_namespace(terminating)
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    registry, metrics = _metrics()
    with _sink(control_plane, metrics) as sink:
        sleeps: list[float] = []  # a refusal is never retried
        recorder = _recorder(sink, metrics, sleep=sleeps.append)

        assert (
            recorder.record(_spec(ObjectTarget("ConfigMap", "x", missing))) == "namespace_missing"
        )
        assert _lookups(registry, "not_found") == 1
        assert recorder.record(_spec(ObjectTarget("ConfigMap", "x", terminating))) == (
            "namespace_terminating"
        )
        misfiling = _recorder(_Misfiling(sink, "default"), metrics)
        target = ObjectTarget("ConfigMap", "quota-settings", namespace)
        assert misfiling.record(_spec(target)) == "invalid"
        assert sleeps == []
        assert _dropped(registry, "namespace_missing") == 1
        assert _dropped(registry, "namespace_terminating") == 1
        assert _dropped(registry, "invalid") == 1
        assert _requests(registry, "create", "404") == 1
        assert _requests(registry, "create", "403") == 1
        assert _requests(registry, "create", "422") == 1

        # The sink's own errors carry the apiserver's status and message.
        event = _event(sink.resolve(target))
        assert event.namespace == namespace
        with pytest.raises(Refused) as invalid:
            sink.create(dataclasses.replace(event, namespace="default"))
        assert invalid.value.cause == "invalid"
        assert "422 Invalid" in invalid.value.detail
        assert "does not match event.namespace" in invalid.value.detail
        with pytest.raises(NotFound) as no_namespace:
            sink.create(dataclasses.replace(event, namespace=missing))
        assert no_namespace.value.cause == "namespace_missing"
        assert f'namespaces "{missing}" not found' in no_namespace.value.detail
        with pytest.raises(NotFound) as expired:
            sink.patch(event, event.repeat_patch())  # never created: the Event "expired"
        assert expired.value.cause == "event_missing"
        with pytest.raises(Refused) as closing:
            sink.create(_event(InvolvedObject("ConfigMap", "x", terminating, "v1")))
        assert closing.value.cause == "namespace_terminating"
        assert "403 Forbidden" in closing.value.detail
        assert "because it is being terminated" in closing.value.detail

        # After all that, a normal Event is written; writing it twice is a conflict.
        sink.create(event)
        with pytest.raises(Refused) as conflict:
            sink.create(event)
        assert conflict.value.cause == "conflict"
        assert "409 AlreadyExists" in conflict.value.detail
        assert recorder.record(_spec(target, "settings reloaded again")) == "create"

    assert {e["message"] for e in _events(control_plane, namespace)} == {
        "settings reloaded",
        "settings reloaded again",
    }


def test_unreachable_api_is_retried_then_counted(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    closed = token_kubeconfig(
        tmp_path / "closed.kubeconfig",
        server=f"https://127.0.0.1:{_closed_port()}",
        ca_pem=control_plane.ca_pem,
        token="unused",
    )
    registry, metrics = _metrics()
    with connect(kubeconfig=str(closed), metrics=metrics) as sink:
        with pytest.raises(Unreachable):
            sink.ping()
        with pytest.raises(Unreachable):
            sink.create(_event(InvolvedObject("Pod", "web-0", "team-a", "v1")))
        target = ObjectTarget("Pod", "web-0", "team-a", "", "")
        # resolve never raises: the reference as given (the core group's version is known).
        assert sink.resolve(target) == InvolvedObject("Pod", "web-0", "team-a", "v1")
        assert _lookups(registry, "error") == 1

        sleeps: list[float] = []
        recorder = _recorder(
            sink,
            metrics,
            retry=RetrySettings(max_tries=3, interval_seconds=0.01),
            sleep=sleeps.append,
        )
        assert recorder.record(_spec(target)) == "retries_exhausted"
        assert len(sleeps) == 2
        assert sleeps[1] == 0.01
        assert _dropped(registry, "retries_exhausted") == 1
        assert _requests(registry, "create", "unreachable") == 1 + 3

        # The same steps driven from the event loop through the daemon's sender.
        decision = recorder.prepare(_spec(target, "settings reloaded once more"))
        assert not isinstance(decision, str)
        pauses: list[float] = []

        async def pause(seconds: float) -> None:
            pauses.append(seconds)

        async def write() -> Any:
            sender = sink.sender(1)
            try:
                return await drive_async(recorder.write_steps(decision), sender, pause)
            finally:
                await sender.close()

        assert asyncio.run(write()) == "retries_exhausted"
        assert len(pauses) == 2
        assert pauses[1] == 0.01
        assert _dropped(registry, "retries_exhausted") == 2
        assert _requests(registry, "create", "unreachable") == 1 + 3 + 3


def test_an_api_that_never_answers_times_out_as_unreachable(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connections complete in the kernel; nobody ever answers
        kubeconfig = token_kubeconfig(
            tmp_path / "silent.kubeconfig",
            server=f"https://127.0.0.1:{silent.getsockname()[1]}",
            ca_pem=control_plane.ca_pem,
            token="unused",
        )
        _, metrics = _metrics()
        settings = KubeSettings(request_timeout=0.3)
        with connect(kubeconfig=str(kubeconfig), metrics=metrics, settings=settings) as sink:
            began = time.monotonic()
            with pytest.raises(Unreachable):
                sink.ping()
            assert time.monotonic() - began < 5

            async def send() -> None:  # the daemon's writes time out the same way
                sender = sink.sender(1)
                try:
                    await sender.send(Send(_event(InvolvedObject("Pod", "web-0", "ns", "v1"))))
                finally:
                    await sender.close()

            began = time.monotonic()
            with pytest.raises(Unreachable):
                asyncio.run(send())
            assert time.monotonic() - began < 5


def test_ping_answers_the_server_version(control_plane: ControlPlane) -> None:
    _, metrics = _metrics()
    with _sink(control_plane, metrics) as sink:
        version = sink.ping()
    versions = json.loads(control_plane.kubectl("version", "-o", "json").stdout)
    assert version == versions["serverVersion"]["gitVersion"]


# -- what goes on the wire ---------------------------------------------------------------------


def test_repeat_is_sent_as_a_strategic_merge_patch(capture_server: Path) -> None:
    _, metrics = _metrics()
    involved = InvolvedObject("Pod", "web-0", "team-a", "v1", "0b1c", "42")
    event = Event(
        name="web-0.17f0",
        namespace="team-a",
        involved=involved,
        type="Warning",
        reason="QuotaNearlyExhausted",
        message="m",
        first_timestamp=1_700_000_000.0,
        last_timestamp=1_700_000_060.0,
        count=2,
        component=COMPONENT,
        host=HOST,
    )
    with connect(kubeconfig=str(capture_server), metrics=metrics) as sink:
        sink.create(event)
        sink.patch(event, event.repeat_patch())
    (post, post_path, post_headers, post_body), (verb, path, headers, body) = Capture.requests
    assert (post, post_path) == ("POST", "/api/v1/namespaces/team-a/events")
    assert post_headers["content-type"] == "application/json"
    sent = json.loads(post_body)
    assert sent["involvedObject"] == involved.to_body()
    assert sent["metadata"] == {"name": "web-0.17f0", "namespace": "team-a"}
    assert (verb, path) == ("PATCH", "/api/v1/namespaces/team-a/events/web-0.17f0")
    assert headers["content-type"] == STRATEGIC_MERGE_PATCH
    assert headers["authorization"] == "Bearer t0ken"
    assert json.loads(body) == {"count": 2, "lastTimestamp": "2023-11-14T22:14:20Z", "message": "m"}
    assert post_headers["user-agent"].startswith("kube-event-sidecar/")


# -- configuration -----------------------------------------------------------------------------


def test_missing_kubeconfig_is_a_clear_error() -> None:
    _, metrics = _metrics()
    with pytest.raises(KubeConfigError) as error:
        connect(kubeconfig="/nonexistent/sidecar.kubeconfig", metrics=metrics)
    assert str(error.value) == (
        "no usable Kubernetes configuration; tried:\n"
        "  - kubeconfig /nonexistent/sidecar.kubeconfig (given explicitly): file does not exist"
    )


def test_without_any_configuration_every_attempt_is_listed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    _, metrics = _metrics()
    with pytest.raises(KubeConfigError) as error:
        connect(kubeconfig=None, metrics=metrics)
    message = str(error.value)
    assert message.startswith("no usable Kubernetes configuration; tried:\n")
    assert "  - in-cluster service account: Service host/port is not set." in message
    assert (
        f"  - kubeconfig {tmp_path / 'absent'} (from $KUBECONFIG): file does not exist" in message
    )

    garbage = tmp_path / "garbage"
    garbage.write_text("clusters: 3\n")
    with pytest.raises(KubeConfigError) as error:
        connect(kubeconfig=str(garbage), metrics=metrics)
    assert f"kubeconfig {garbage} (given explicitly): " in str(error.value)


def test_kubeconfig_from_the_environment_and_an_unknown_context(
    control_plane: ControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(control_plane.kubeconfig))
    _, metrics = _metrics()
    with connect(kubeconfig=None, metrics=metrics) as sink:
        assert sink.server == control_plane.server
        assert sink.ping().startswith("v1.")
    with pytest.raises(KubeConfigError) as error:
        connect(kubeconfig=str(control_plane.kubeconfig), context="nope", metrics=metrics)
    assert "with context 'nope'" in str(error.value)
