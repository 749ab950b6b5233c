"""`sidecar.kube` against a real kube-apiserver: new Events as client-go writes them, look-ups,
and repeats, aggregation and the spam filter over the wire.

Every test drives the real path (Recorder -> KubeSink -> apiserver) and reads the result back
from the API or with the built kubectl, so what is asserted is what users will see.
"""

from __future__ import annotations

import re
import time
import uuid

from kubernetes import client

from sidecar.core.correlate import AGGREGATE_PREFIX, CorrelatorSettings
from sidecar.core.events.corev1 import InvolvedObject
from sidecar.kube import KubeSettings
from sidecar.model import ObjectTarget
from tests.controlplane import ControlPlane
from tests.kube_support import (
    COMPONENT,
    HOST,
    TIMESTAMP,
    _apply,
    _crd,
    _create_custom,
    _create_pod,
    _create_rqa,
    _dropped,
    _events,
    _identity,
    _lookups,
    _metrics,
    _recorder,
    _requests,
    _sample,
    _served,
    _sink,
    _spec,
    _table,
    _wait,
    _wide_events,
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
