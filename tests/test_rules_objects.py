"""Object references from the line: the written forms controllers use, `kind` and `apiVersion`
from templates, and a `uid` that spares the sink its look-up (pure: compiled rules on records)."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.core.lines.records import ObjectRef, Record, ref_of
from sidecar.core.pipeline import Processor, RuleMiss
from sidecar.core.rules import RulesError, compile_rules, parse_rules
from sidecar.core.transitions import TransitionTracker
from sidecar.model import EventSpec, ObjectTarget
from sidecar.runtime.sinks import unresolved


@pytest.mark.parametrize(
    ("written", "ref"),
    [
        # kube-runtime's own Display test vectors (reflector/object_ref.rs).
        ("Pod.v1./my-pod.my-namespace", ("Pod", "v1", "my-namespace", "my-pod")),
        (
            "Deployment.v1.apps/my-deploy.my-namespace",
            ("Deployment", "apps/v1", "my-namespace", "my-deploy"),
        ),
        ("Node.v1./my-node", ("Node", "v1", "", "my-node")),
        ("Document.v1.kube.rs/samuel.default", ("Document", "kube.rs/v1", "default", "samuel")),
        (
            "Widget.v1beta2.example.com/w.team-b",
            ("Widget", "example.com/v1beta2", "team-b", "w"),
        ),
        # A name may hold dots, a namespace never does.
        (
            "ConfigMap.v1./kube-root-ca.crt.kube-system",
            ("ConfigMap", "v1", "kube-system", "kube-root-ca.crt"),
        ),
        # ...except that a built-in cluster-scoped kind has no namespace to split off.
        (
            "CustomResourceDefinition.v1.apiextensions.k8s.io/things.example.com",
            ("CustomResourceDefinition", "apiextensions.k8s.io/v1", "", "things.example.com"),
        ),
        ("Pod(default/web-1)", ("Pod", "", "default", "web-1")),
        ("Node(worker-1)", ("Node", "", "", "worker-1")),
        ("default/web-1", ("", "", "default", "web-1")),
    ],
)
def test_written_forms(written: str, ref: tuple[str, str, str, str]) -> None:
    found = ref_of(written)
    assert found is not None
    assert (found.kind, found.api_version, found.namespace, found.name) == ref


def test_a_full_reference_object() -> None:
    found = ref_of(
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "w", "namespace": "n", "uid": "u"}
    )
    assert found is not None
    assert (found.kind, found.api_version, found.namespace, found.name, found.uid) == (
        "Deployment",
        "apps/v1",
        "n",
        "w",
        "u",
    )
    # Compared as before: by name and namespace.
    assert found == ObjectRef("w", "n")


@pytest.mark.parametrize("value", ["web", "Pod(a/b/c)", "pod.v1./x", "Pod.1./x", 3, None, [], ""])
def test_not_a_reference(value: Any) -> None:
    assert ref_of(value) is None


def process(rules: str, record: Record) -> Any:
    return Processor(compile_rules(parse_rules(rules, "rules.yaml")), TransitionTracker()).process(
        record
    )


def target_of(rules: str, record: Record) -> ObjectTarget:
    outcome = process(rules, record)
    assert isinstance(outcome, EventSpec), outcome
    return outcome.target


OWN = """
rules:
  - name: r
    match: {message: m}
    object: {ref: obj}
    reason: R
"""


def test_without_kind_the_object_is_the_reference_s_own() -> None:
    target = target_of(OWN, Record("m", fields={"obj": "Document.v1.kube.rs/samuel.default"}))
    assert target == ObjectTarget("Document", "samuel", "default", "kube.rs/v1", "kube.rs")
    core = target_of(OWN, Record("m", fields={"obj": "Pod.v1./web.shop"}))
    assert (core.api_version, core.api_group) == ("v1", "")
    written = target_of(OWN, Record("m", fields={"obj": "Pod(shop/web)"}))
    assert written == ObjectTarget("Pod", "web", "shop", "", None)
    full = target_of(
        OWN,
        Record("m", fields={"obj": {"apiVersion": "v1", "kind": "Pod", "name": "a", "uid": "u-1"}}),
    )
    assert (full.kind, full.api_version, full.uid) == ("Pod", "v1", "u-1")
    # What the sink writes without a look-up: the line's uid.
    assert unresolved(full).uid == "u-1"


def test_a_reference_without_its_kind_is_a_miss_of_kind() -> None:
    assert process(OWN, Record("m", fields={"obj": "shop/web"})) == RuleMiss("r", "kind")
    assert process(OWN, Record("m", fields={})) == RuleMiss("r", "obj")


def test_the_rule_s_kind_and_version_win_over_the_reference_s_and_its_uid_is_not_taken() -> None:
    rules = """
rules:
  - name: r
    match: {message: m}
    object: {apiVersion: example.com/v2, kind: Widget, ref: obj}
    reason: R
"""
    target = target_of(
        rules, Record("m", fields={"obj": {"kind": "Other", "name": "w", "uid": "u"}})
    )
    assert target == ObjectTarget("Widget", "w", "", "example.com/v2", "example.com")


TEMPLATED = """
rules:
  - name: r
    match: {message: {regex: "^(?P<kind>\\\\w+) (?P<ns>[a-z-]+)/(?P<name>[a-z0-9-]+)"}}
    object:
      kind: "{kind}"
      apiVersion: "{group}/v1"
      name: "{name}"
      namespace: "{ns}"
      uid: "{uid}"
    reason: R
"""


def test_kind_api_version_and_uid_from_templates() -> None:
    target = target_of(
        TEMPLATED, Record("Deployment shop/web", fields={"group": "apps", "uid": "u"})
    )
    assert target == ObjectTarget("Deployment", "web", "shop", "apps/v1", "apps", "", "u")


@pytest.mark.parametrize(
    ("message", "fields", "missing"),
    [
        ("deployment shop/web", {"group": "apps", "uid": "u"}, "kind"),  # not a Kind
        ("Deployment shop/web", {"group": "Apps!", "uid": "u"}, "apiVersion"),
        ("Deployment shop/web", {"group": "apps"}, "uid"),
    ],
)
def test_a_rendered_kind_or_version_that_is_none_is_a_miss(
    message: str, fields: dict[str, str], missing: str
) -> None:
    assert process(TEMPLATED, Record(message, fields=fields)) == RuleMiss("r", missing)


def test_kind_is_needed_without_ref_and_checked_when_constant() -> None:
    with pytest.raises(RulesError, match="give kind, or a ref"):
        parse_rules("rules: [{name: r, match: {message: m}, object: {name: x}, reason: R}]", "r")
    with pytest.raises(RulesError, match="is not a Kind"):
        parse_rules("rules: [{name: r, match: {message: m}, object: {kind: pod}, reason: R}]", "r")
    with pytest.raises(RulesError, match="invalid template"):
        parse_rules(
            "rules: [{name: r, match: {message: m}, object: {kind: '{a', ref: x}, reason: R}]",
            "r",
        )


def test_a_nested_ref_is_followed_as_a_path() -> None:
    rules = OWN.replace("ref: obj", "ref: fields.object")
    nested = Record("m", fields={"fields": {"object": "Pod(shop/web)"}})
    assert target_of(rules, nested).name == "web"
    # The key `fields.object` still comes first, as it always did.
    both = Record("m", fields={"fields.object": "Pod(a/b)", "fields": {"object": "Pod(c/d)"}})
    assert target_of(rules, both).name == "b"
