"""The MutatingAdmissionPolicy (sidecar/inject/policy.py, manifests/policy/) on a real apiserver.

Each pod is created twice in a `restricted` namespace: once raw, injected by the policy (no
webhook runs), and once already injected by `event-sidecar inject` (which the policy leaves
alone), as a server-side dry run so that both get the apiserver's defaults. Their stored specs and
annotations must be equal.
"""

from __future__ import annotations

import contextlib
import copy
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client

from sidecar.inject import INJECT_LABEL, PREFIX, SIDECAR_NAME, InjectSettings
from sidecar.inject.policy import POLICY_NAME, build_policy, dump_policy
from tests.controlplane import REPO_ROOT, ControlPlane

POLICY_FILE = REPO_ROOT / "manifests" / "policy" / "policy.yaml"
_RESTRICTED = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def app(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": "controller:1", "securityContext": _RESTRICTED, **extra}


def pod(name: str, *containers: dict[str, Any], **extra: Any) -> dict[str, Any]:
    annotations = extra.pop("annotations", None)
    metadata: dict[str, Any] = {"name": name, "labels": {INJECT_LABEL: "true"}}
    if annotations is not None:
        metadata["annotations"] = annotations
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"containers": list(containers or [app("ctl")]), **extra},
    }


CASES = {
    "defaults": pod("defaults"),
    "annotated": pod(
        "annotated",
        app("sidecar-of-app", ports=[{"containerPort": 9090}]),
        app("ctl", env=[{"name": "A", "value": "1"}]),
        annotations={
            PREFIX + "container": "ctl",
            PREFIX + "log-path": "/logs/ctl/*.json",
            PREFIX + "native-sidecar": "false",
            PREFIX + "image": "registry.example/event-sidecar@sha256:" + "a" * 64,
            PREFIX + "log-level": "debug",
            PREFIX + "rules-configmap": "ctl-rules",
            "prometheus.io/scrape": "false",
            "team": "a/b~c",
        },
        volumes=[{"name": "event-sidecar-rules", "emptyDir": {}}],
    ),
    "socket": pod(
        "socket",
        app("ctl", env=[{"name": "B", "value": "2"}]),
        annotations={PREFIX + "socket": "tcp://127.0.0.1:5170"},
    ),
    "shared-log-mount": pod(
        "shared",
        app("ctl", volumeMounts=[{"name": "logs", "mountPath": "/var/log/app", "subPath": "x"}]),
        volumes=[{"name": "logs", "emptyDir": {}}],
        initContainers=[app("setup")],
    ),
}


def inject_offline(body: dict[str, Any]) -> dict[str, Any]:
    """What `event-sidecar inject -f -` writes for `body`."""
    out = subprocess.run(
        [sys.executable, "-m", "sidecar", "inject", "-f", "-"],
        input=json.dumps(body),
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
    ).stdout
    return dict(json.loads(out))


def stored_view(obj: dict[str, Any]) -> dict[str, Any]:
    """What both ways of injecting must agree on: spec and annotations, without the token volume
    the ServiceAccount admission plugin adds (a random name, and placed before the policy runs
    but after `inject`'s volumes)."""
    spec = copy.deepcopy(obj["spec"])

    def ours(item: dict[str, Any]) -> bool:
        return not str(item.get("name", "")).startswith("kube-api-access-")

    spec["volumes"] = [v for v in spec.get("volumes", []) if ours(v)]
    for container in spec["containers"] + spec.get("initContainers", []):
        container["volumeMounts"] = [m for m in container.get("volumeMounts", []) if ours(m)]
    return {"spec": spec, "annotations": obj["metadata"].get("annotations")}


def test_the_policy_manifest_is_generated_from_the_default_settings() -> None:
    assert POLICY_FILE.read_text() == dump_policy(InjectSettings())


def test_excluded_namespaces_extend_the_system_ones() -> None:
    [policy, binding] = build_policy(InjectSettings(), exclude_namespaces=["tools"])
    [expression] = policy["spec"]["matchConstraints"]["namespaceSelector"]["matchExpressions"]
    assert expression["values"] == ["kube-node-lease", "kube-public", "kube-system", "tools"]
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]


def labeller(namespace: str) -> list[dict[str, Any]]:
    """A second policy that labels every pod, so the apiserver reinvokes ours after it."""
    name = f"labeller-{namespace}"
    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {
                "reinvocationPolicy": "IfNeeded",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE"],
                            "resources": ["pods"],
                        }
                    ]
                },
                "mutations": [
                    {
                        "patchType": "ApplyConfiguration",
                        "applyConfiguration": {
                            "expression": (
                                "Object{metadata: Object.metadata{labels: {'labelled': 'yes'}}}"
                            )
                        },
                    }
                ],
            },
        },
        bound(name, namespace),
    ]


def bound(policy: str, namespace: str) -> dict[str, Any]:
    """A binding of `policy` limited to `namespace`, so other tests' pods are never touched."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingAdmissionPolicyBinding",
        "metadata": {"name": f"{policy}-{namespace}"},
        "spec": {
            "policyName": policy,
            "matchResources": {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": namespace},
                }
            },
        },
    }


@contextlib.contextmanager
def installed(cp: ControlPlane, objects: list[dict[str, Any]]) -> Iterator[None]:
    text = yaml.safe_dump_all(objects)
    cp.kubectl("apply", "-f", "-", input=text)
    try:
        yield
    finally:
        cp.kubectl("delete", "--ignore-not-found", "-f", "-", input=text)


def create(cp: ControlPlane, namespace: str, body: dict[str, Any], dry_run: bool = False) -> Any:
    """Create with kubectl; return the pod as the apiserver stored (or would store) it."""
    args = ["create", "-n", namespace, "-o", "json", "-f", "-"]
    result = cp.kubectl(*args, *(["--dry-run=server"] if dry_run else []), input=json.dumps(body))
    return json.loads(result.stdout)


@pytest.fixture
def policy_namespace(
    control_plane: ControlPlane, kube_api_client: client.ApiClient, namespace: str
) -> Iterator[str]:
    """`namespace`, enforcing `restricted` Pod Security, with the policy bound to it alone."""
    core = client.CoreV1Api(kube_api_client)
    core.patch_namespace(
        namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    )
    [policy, _] = list(yaml.safe_load_all(POLICY_FILE.read_text()))
    with installed(control_plane, [policy, bound(POLICY_NAME, namespace)]):
        probe = pod("probe")
        deadline = time.monotonic() + 30
        while "initContainers" not in create(control_plane, namespace, probe, dry_run=True)["spec"]:
            assert time.monotonic() < deadline, "the policy never started injecting"
            time.sleep(0.2)
        yield namespace


@pytest.mark.parametrize("case", list(CASES))
def test_the_policy_injects_what_inject_writes_and_passes_restricted(
    control_plane: ControlPlane, policy_namespace: str, case: str
) -> None:
    body = CASES[case]
    by_policy = create(control_plane, policy_namespace, copy.deepcopy(body))
    assert by_policy.get("kind") == "Pod", by_policy  # created: restricted admitted it
    offline = inject_offline(copy.deepcopy(body))
    offline["metadata"]["name"] += "-offline"
    by_inject = create(control_plane, policy_namespace, offline, dry_run=True)
    assert by_inject.get("kind") == "Pod", by_inject
    assert stored_view(by_policy) == stored_view(by_inject)
    containers = by_policy["spec"]["containers"] + by_policy["spec"].get("initContainers", [])
    assert [c["name"] for c in containers].count(SIDECAR_NAME) == 1


def test_reinvocation_after_another_mutation_does_not_inject_twice(
    control_plane: ControlPlane, policy_namespace: str
) -> None:
    with installed(control_plane, labeller(policy_namespace)):
        deadline = time.monotonic() + 30
        while True:
            stored = create(control_plane, policy_namespace, pod("twice"), dry_run=True)
            if stored["metadata"]["labels"].get("labelled") == "yes":
                break
            assert time.monotonic() < deadline, "the labelling policy never ran"
            time.sleep(0.2)
        stored = create(control_plane, policy_namespace, pod("twice"))
    names = [c["name"] for c in stored["spec"]["containers"] + stored["spec"]["initContainers"]]
    assert names.count(SIDECAR_NAME) == 1
    assert stored["metadata"]["labels"]["labelled"] == "yes"


@pytest.mark.parametrize(
    ("name", "annotations", "labels"),
    [
        ("not-opted-in", {}, {INJECT_LABEL: "false"}),
        ("resources", {PREFIX + "resources": '{"limits": {"memory": "1Gi"}}'}, None),
        ("bad-level", {PREFIX + "log-level": "loud"}, None),
        ("typo", {PREFIX + "log-paht": "/x/y.log"}, None),
        ("no-such-container", {PREFIX + "container": "nope"}, None),
        (
            "two-sources",
            {PREFIX + "socket": "tcp://127.0.0.1:1", PREFIX + "log-path": "/a/b"},
            None,
        ),
    ],
)
def test_pods_the_policy_cannot_honour_are_created_uninjected(
    control_plane: ControlPlane,
    policy_namespace: str,
    name: str,
    annotations: dict[str, str],
    labels: dict[str, str] | None,
) -> None:
    body = pod(name, annotations=annotations)
    if labels is not None:
        body["metadata"]["labels"] = labels
    stored = create(control_plane, policy_namespace, body)
    assert stored.get("kind") == "Pod", stored
    assert [c["name"] for c in stored["spec"]["containers"]] == ["ctl"]
    assert "initContainers" not in stored["spec"]


def test_inject_emit_policy_prints_the_shipped_policy_for_the_default_settings() -> None:
    """`event-sidecar inject --emit-policy` is how a user regenerates `manifests/policy/`."""
    done = subprocess.run(
        [sys.executable, "-m", "sidecar", "inject", "--emit-policy"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == POLICY_FILE.read_text()
    changed = subprocess.run(
        [sys.executable, "-m", "sidecar", "inject", "--emit-policy", "--image", "example/x:1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "example/x:1" in changed.stdout
    assert "example/x:1" not in done.stdout
