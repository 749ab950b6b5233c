"""`sidecar.kube` on canned apiserver answers: discovery, look-ups and write errors.

A fake `Transport` answers from a table of paths (and records what was asked), so that these run
without a cluster; `tests/test_kube.py` runs the same code against a real kube-apiserver.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from sidecar.core.events.corev1 import InvolvedObject
from sidecar.kube.api_sink import KubeSink
from sidecar.kube.discovery import NotDiscovered
from sidecar.kube.errors import ApiContact
from sidecar.kube.lookup import Fetch, ObjectLookup, begin, conclude
from sidecar.kube.settings import DEFAULT_SETTINGS, KubeSettings
from sidecar.kube.transport import Answer
from sidecar.model import LookupResult, ObjectTarget
from sidecar.runtime.metrics import Metrics
from sidecar.runtime.sinks import NotFound, NotYetAllowed, Refused, Unreachable
from tests.test_sinks import an_event

CORE = {"versions": ["v1"]}
CORE_V1 = {
    "resources": [
        {"name": "pods", "kind": "Pod", "namespaced": True},
        {"name": "pods/status", "kind": "Pod", "namespaced": True},
        {"name": "nodes", "kind": "Node", "namespaced": False},
    ]
}
GROUPS = {
    "groups": [
        {
            "name": "metrics.k8s.io",
            "versions": [{"groupVersion": "metrics.k8s.io/v1beta1"}],
            "preferredVersion": {"groupVersion": "metrics.k8s.io/v1beta1"},
        },
        {
            "name": "apps",
            "versions": [{"groupVersion": "apps/v1"}],
            "preferredVersion": {"groupVersion": "apps/v1"},
        },
        {
            "name": "quota.example.com",
            "versions": [
                {"groupVersion": "quota.example.com/v1"},
                {"groupVersion": "quota.example.com/v1alpha1"},
            ],
            "preferredVersion": {"groupVersion": "quota.example.com/v1"},
        },
    ]
}
QUOTA_GROUP = GROUPS["groups"][2]
APPS_V1 = {"resources": [{"name": "deployments", "kind": "Deployment", "namespaced": True}]}
QUOTA_V1: dict[str, Any] = {"resources": []}
QUOTA_V1ALPHA1 = {
    "resources": [
        {"name": "resourcequotaautoscalers", "kind": "ResourceQuotaAutoscaler", "namespaced": True}
    ]
}


def _metadata(uid: str, version: str = "7") -> dict[str, Any]:
    return {"metadata": {"uid": uid, "resourceVersion": version}}


class CannedApi:
    """A `Transport` answering from `answers` (path -> status and JSON); 404 for anything else."""

    def __init__(self, answers: dict[str, tuple[int, Any]]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, str, str]] = []
        self.unreachable = False

    @property
    def server(self) -> str:
        return "https://canned.invalid"

    def request(
        self, verb: str, method: str, path: str, headers: dict[str, str], body: Any = None
    ) -> Answer:
        self.asked.append((verb, method, path))
        if self.unreachable:
            raise Unreachable(f"{verb}: connection refused")
        status, document = self.answers.get(path, (404, {"kind": "Status", "reason": "NotFound"}))
        return Answer(status, json.dumps(document).encode())

    def close(self) -> None:
        pass


def _discovery() -> dict[str, tuple[int, Any]]:
    return {
        "/api": (200, CORE),
        "/api/v1": (200, CORE_V1),
        "/apis": (200, GROUPS),
        "/apis/metrics.k8s.io/v1beta1": (503, {"message": "service unavailable"}),
        "/apis/apps/v1": (200, APPS_V1),
        "/apis/quota.example.com": (200, QUOTA_GROUP),
        "/apis/quota.example.com/v1": (200, QUOTA_V1),
        "/apis/quota.example.com/v1alpha1": (200, QUOTA_V1ALPHA1),
    }


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _lookup(
    api: CannedApi, settings: KubeSettings = DEFAULT_SETTINGS
) -> tuple[ObjectLookup, CollectorRegistry, Clock]:
    registry, clock = CollectorRegistry(), Clock()
    return ObjectLookup(api, Metrics(registry), settings, clock), registry, clock


def _counted(registry: CollectorRegistry, result: LookupResult) -> float | None:
    return registry.get_sample_value("event_sidecar_object_lookups_total", {"result": result})


def test_a_pod_gets_its_uid_then_comes_from_the_cache() -> None:
    api = CannedApi({**_discovery(), "/api/v1/namespaces/shop/pods/web-0": (200, _metadata("u1"))})
    lookup, registry, _ = _lookup(api)
    target = ObjectTarget("Pod", "web-0", "shop", field_path="spec.containers{app}")
    found = lookup.resolve(target)
    assert found == InvolvedObject(
        "Pod", "web-0", "shop", "v1", uid="u1", resource_version="7", field_path=target.field_path
    )
    asked = len(api.asked)
    assert lookup.resolve(target) == found
    assert len(api.asked) == asked
    assert (_counted(registry, "found"), _counted(registry, "hit")) == (1, 1)


def test_a_cached_object_is_known_until_its_ttl_then_asked_again() -> None:
    path = "/api/v1/namespaces/shop/pods/web-0"
    api = CannedApi({**_discovery(), path: (200, _metadata("u1"))})
    lookup, registry, clock = _lookup(api, KubeSettings(lookup_ttl=30.0))
    target = ObjectTarget("Pod", "web-0", "shop")
    assert lookup.known(target) is None  # never asked: `resolve` would have to ask
    found = lookup.resolve(target)
    clock.now += 29.9
    assert lookup.known(target) == found
    assert lookup.known(ObjectTarget("Pod", "web-0", "shop", field_path="spec")) == replace(
        found, field_path="spec"
    )
    clock.now += 0.1
    assert lookup.known(target) is None
    assert lookup.resolve(target) == found
    assert [asked for _, _, asked in api.asked if asked == path] == [path, path]
    assert (_counted(registry, "found"), _counted(registry, "hit")) == (2, 2)


def test_a_kind_spelled_in_lower_case_is_found_in_its_group_past_a_broken_one() -> None:
    """metrics.k8s.io answers 503 (an aggregated API whose backend is down): apps still counts."""
    path = "/apis/apps/v1/namespaces/shop/deployments/web"
    api = CannedApi({**_discovery(), path: (200, _metadata("u2"))})
    lookup, registry, _ = _lookup(api)
    found = lookup.resolve(ObjectTarget("deployment", "web", "shop"))
    assert (found.kind, found.api_version, found.uid) == ("Deployment", "apps/v1", "u2")
    assert ("discover", "GET", "/apis/metrics.k8s.io/v1beta1") in api.asked
    assert _counted(registry, "found") == 1


def test_a_group_is_searched_beyond_its_preferred_version() -> None:
    path = "/apis/quota.example.com/v1alpha1/namespaces/team-a/resourcequotaautoscalers/q"
    api = CannedApi({**_discovery(), path: (200, _metadata("u3"))})
    lookup, _, _ = _lookup(api)
    found = lookup.resolve(
        ObjectTarget("ResourceQuotaAutoscaler", "q", "team-a", "", "quota.example.com")
    )
    assert (found.api_version, found.uid) == ("quota.example.com/v1alpha1", "u3")
    # A group named explicitly is asked about alone: not the list of every group.
    assert ("discover", "GET", "/apis") not in api.asked


def test_a_cluster_scoped_kind_drops_the_namespace() -> None:
    api = CannedApi({**_discovery(), "/api/v1/nodes/node-1": (200, _metadata("n1"))})
    lookup, _, _ = _lookup(api)
    found = lookup.resolve(ObjectTarget("Node", "node-1", "somewhere"))
    assert (found.namespace, found.uid) == ("", "n1")


def test_a_namespaced_kind_without_namespace_is_not_fetched() -> None:
    api = CannedApi(_discovery())
    lookup, registry, _ = _lookup(api)
    found = lookup.resolve(ObjectTarget("Pod", "web-0", ""))
    assert found.uid == ""
    assert [verb for verb, _, _ in api.asked if verb == "get"] == []
    assert _counted(registry, "not_found") == 1


@pytest.mark.parametrize(("status", "result"), [(403, "forbidden"), (404, "not_found")])
def test_a_forbidden_or_missing_object_keeps_its_reference_and_is_cached(
    status: int, result: LookupResult
) -> None:
    api = CannedApi({**_discovery(), "/api/v1/namespaces/shop/pods/web-0": (status, {})})
    lookup, registry, _ = _lookup(api)
    target = ObjectTarget("Pod", "web-0", "shop")
    assert lookup.resolve(target) == InvolvedObject("Pod", "web-0", "shop", "v1")
    lookup.resolve(target)
    assert (_counted(registry, result), _counted(registry, "hit")) == (1, 1)


def test_a_403_soon_after_the_api_was_out_of_reach_is_not_cached() -> None:
    """An apiserver that just restarted answers 403 until its RBAC caches fill: that answer is
    not kept for the cache's TTL, so the object's next Event asks again and gets its uid."""
    path = "/api/v1/namespaces/shop/pods/web-0"
    api = CannedApi({**_discovery(), path: (403, {})})
    registry, clock = CollectorRegistry(), Clock()
    contact = ApiContact(30.0, clock=clock)
    lookup = ObjectLookup(api, Metrics(registry), DEFAULT_SETTINGS, clock, contact=contact)
    target = ObjectTarget("Pod", "web-0", "shop")
    assert lookup.resolve(target).uid == ""
    api.answers[path] = (200, _metadata("u1"))
    assert lookup.resolve(target).uid == "u1"
    assert (_counted(registry, "forbidden"), _counted(registry, "found")) == (1, 1)
    # Past the grace, a 403 is the lasting answer and cached as such.
    clock.now += 31
    other = ObjectTarget("Pod", "web-1", "shop")
    api.answers["/api/v1/namespaces/shop/pods/web-1"] = (403, {})
    lookup.resolve(other)
    api.answers["/api/v1/namespaces/shop/pods/web-1"] = (200, _metadata("u2"))
    assert lookup.resolve(other).uid == ""
    assert _counted(registry, "hit") == 1


def test_a_failed_object_get_is_an_error_with_the_best_version_and_not_cached() -> None:
    path = "/apis/quota.example.com/v1alpha1/namespaces/team-a/resourcequotaautoscalers/q"
    api = CannedApi({**_discovery(), path: (500, {"message": "etcd timeout"})})
    lookup, registry, _ = _lookup(api)
    target = ObjectTarget("ResourceQuotaAutoscaler", "q", "team-a", "", "quota.example.com")
    for _ in range(2):
        found = lookup.resolve(target)
        assert (found.uid, found.api_version) == ("", "quota.example.com/v1")
    assert _counted(registry, "error") == 2
    assert _counted(registry, "hit") == 0


def test_an_unreachable_api_is_an_error_and_the_reference_as_named() -> None:
    api = CannedApi(_discovery())
    api.unreachable = True
    lookup, registry, _ = _lookup(api)
    found = lookup.resolve(ObjectTarget("Pod", "web-0", "shop", "", ""))
    assert found == InvolvedObject("Pod", "web-0", "shop", "v1")
    assert _counted(registry, "error") == 1


def test_an_object_known_before_an_outage_keeps_its_uid_during_it() -> None:
    """Past its TTL, the last answer stands in while the API cannot be asked (the uid keeps the
    repeats of one Event together), and a fresh answer replaces it once the API is back."""
    path = "/api/v1/namespaces/shop/pods/web-0"
    api = CannedApi({**_discovery(), path: (200, _metadata("u1"))})
    lookup, registry, clock = _lookup(api, KubeSettings(lookup_ttl=30.0))
    target = ObjectTarget("Pod", "web-0", "shop")
    found = lookup.resolve(target)
    clock.now += 31
    api.unreachable = True
    assert lookup.resolve(target) == found
    assert lookup.resolve(ObjectTarget("Pod", "web-0", "shop", field_path="spec")) == replace(
        found, field_path="spec"
    )
    assert lookup.resolve(ObjectTarget("Pod", "web-1", "shop")).uid == ""  # never known
    assert _counted(registry, "error") == 3
    api.unreachable = False
    api.answers[path] = (200, _metadata("u2", "8"))
    assert lookup.resolve(target).uid == "u2"


def test_an_unknown_kind_rediscovers_at_most_once_per_interval() -> None:
    """A CRD installed after start is found; a kind that does not exist costs no flood."""
    api = CannedApi(_discovery())
    lookup, registry, clock = _lookup(api, KubeSettings(rediscover_interval=30.0))
    target = ObjectTarget("Gadget", "g1", "shop", "", "")
    lookup.resolve(target)
    assert _counted(registry, "unknown_kind") == 1
    asked = len(api.asked)
    clock.now += 10
    lookup.resolve(target)
    assert len(api.asked) == asked  # within the interval: the cached discovery answers
    gadgets = {"name": "gadgets", "kind": "Gadget", "namespaced": True}
    api.answers["/api/v1"] = (200, {"resources": [*CORE_V1["resources"], gadgets]})
    api.answers["/api/v1/namespaces/shop/gadgets/g1"] = (200, _metadata("g"))
    clock.now += 30
    assert lookup.resolve(target).uid == "g"
    assert _counted(registry, "unknown_kind") == 2


def _fetched(
    lookup: ObjectLookup, target: ObjectTarget, answer: Answer | Unreachable
) -> tuple[str, InvolvedObject]:
    """A look-up made as the event loop makes it: (the path of its GET, the object)."""
    steps = lookup.steps(target, discover=False)
    fetch = begin(steps)
    assert isinstance(fetch, Fetch)
    return fetch.path, conclude(steps, answer)


def test_a_look_up_as_steps_asks_nothing_itself_once_its_kind_is_discovered() -> None:
    api = CannedApi(_discovery())
    lookup, registry, _ = _lookup(api)
    web = ObjectTarget("Pod", "web-0", "shop", "", "")
    with pytest.raises(NotDiscovered):
        begin(lookup.steps(web, discover=False))
    assert api.asked == []  # nothing asked on the caller's behalf
    api.answers["/api/v1/namespaces/shop/pods/web-0"] = (200, _metadata("u0"))
    lookup.resolve(web)  # discovers the core group (what a thread does, once per kind)
    asked = len(api.asked)
    path, found = _fetched(
        lookup,
        replace(web, name="web-1"),
        Answer(200, json.dumps(_metadata("u1", "9")).encode()),
    )
    assert path == "/api/v1/namespaces/shop/pods/web-1"
    assert found == InvolvedObject("Pod", "web-1", "shop", "v1", uid="u1", resource_version="9")
    assert len(api.asked) == asked  # the caller made the GET
    assert lookup.known(replace(web, name="web-1")) == found  # and its answer is cached
    # The same answers as `resolve` for the rest: 404, 403, an error, no answer at all.
    answers: list[tuple[str, Answer | Unreachable, LookupResult]] = [
        ("gone", Answer(404, b"{}"), "not_found"),
        ("secret", Answer(403, b"{}"), "forbidden"),
        ("broken", Answer(500, b"{}"), "error"),
        ("far", Unreachable("get: connection refused"), "error"),
    ]
    for name, answer, result in answers:
        _, found = _fetched(lookup, replace(web, name=name), answer)
        assert found == InvolvedObject("Pod", name, "shop", "v1")
        assert _counted(registry, result), result
    assert _counted(registry, "error") == 2
    # A namespaced kind without a namespace needs no GET at all.
    assert begin(lookup.steps(replace(web, namespace=""), discover=False)) == InvolvedObject(
        "Pod", "web-0", "", "v1"
    )


def test_a_kind_not_found_in_cached_discovery_is_left_to_a_thread_when_rediscovery_is_due() -> None:
    api = CannedApi(_discovery())
    lookup, registry, clock = _lookup(api, KubeSettings(rediscover_interval=30.0))
    gadget = ObjectTarget("Gadget", "g1", "shop", "v1", "")
    lookup.resolve(gadget)  # discovers /api/v1: no Gadget there
    assert _counted(registry, "unknown_kind") == 1
    # Within the interval the cached documents answer: unknown, and no request.
    assert begin(lookup.steps(gadget, discover=False)) == InvolvedObject(
        "Gadget", "g1", "shop", "v1"
    )
    assert _counted(registry, "unknown_kind") == 2
    clock.now += 30
    asked = len(api.asked)
    with pytest.raises(NotDiscovered):
        begin(lookup.steps(gadget, discover=False))
    assert len(api.asked) == asked


def _sink(answers: dict[str, tuple[int, Any]], *, grace: float = 0.0) -> KubeSink:
    """A sink over canned answers; `grace`: how long after its start a 403 is held transient
    (none by default, so a 403 is what it lastingly means)."""
    settings = KubeSettings(forbidden_grace=grace)
    return KubeSink(CannedApi(answers), Metrics(CollectorRegistry()), settings)


def test_a_patch_404_is_an_expired_event_and_a_create_404_a_missing_namespace() -> None:
    event = an_event()
    sink = _sink({})
    with pytest.raises(NotFound) as expired:
        sink.patch(event, event.repeat_patch())
    assert expired.value.cause == "event_missing"
    with pytest.raises(NotFound) as missing:
        sink.create(event)
    assert missing.value.cause == "namespace_missing"


def test_write_answers_map_to_refusal_causes() -> None:
    events = "/api/v1/namespaces/shop/events"
    terminating = {
        "reason": "Forbidden",
        "message": 'events "x" is forbidden: unable to create new content in namespace shop '
        "because it is being terminated",
        "details": {"causes": [{"reason": "NamespaceTerminating"}]},
    }
    for status, document, cause in [
        (403, terminating, "namespace_terminating"),
        (403, {"reason": "Forbidden", "message": "no"}, "forbidden"),
        (409, {"reason": "AlreadyExists", "message": "exists"}, "conflict"),
        (422, {"reason": "Invalid", "message": "bad"}, "invalid"),
        (500, {"message": "boom"}, "rejected"),
    ]:
        with pytest.raises(Refused) as refused:
            _sink({events: (status, document)}).create(an_event())
        assert refused.value.cause == cause
        assert str(status) in refused.value.detail
    with pytest.raises(Unreachable, match="throttled"):
        _sink({events: (429, {"message": "slow down"})}).create(an_event())
    # Right after the start a plain 403 is an apiserver whose RBAC is still filling: retried.
    with pytest.raises(NotYetAllowed):
        _sink({events: (403, {"message": "no"})}, grace=30.0).create(an_event())


def test_a_uid_from_the_line_is_taken_without_asking_for_the_object() -> None:
    path = "/api/v1/namespaces/shop/pods/web-0"
    api = CannedApi({**_discovery(), path: (200, _metadata("live-uid"))})
    lookup, registry, _ = _lookup(api)
    assert lookup.resolve(ObjectTarget("Pod", "web-0", "shop")).uid == "live-uid"
    # Cached now; a line that gives the uid still has its own (an object recreated since).
    target = ObjectTarget("Pod", "web-0", "shop", uid="line-uid")
    assert lookup.known(target) is None
    asked = len(api.asked)
    assert lookup.resolve(target) == InvolvedObject("Pod", "web-0", "shop", "v1", uid="line-uid")
    assert len(api.asked) == asked  # discovery was cached: nothing asked
    assert _counted(registry, "hit") == 1
    fresh = CannedApi(_discovery())
    lookup, _, _ = _lookup(fresh)
    found = lookup.resolve(ObjectTarget("Deployment", "web", "shop", uid="u"))
    assert (found.api_version, found.uid) == ("apps/v1", "u")
    assert [p for _, _, p in fresh.asked if "/namespaces/" in p] == []
