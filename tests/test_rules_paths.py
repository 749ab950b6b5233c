"""Field paths (`sidecar.core.rules.paths`): one syntax in match, templates, object and transition.

Old paths (names joined by dots) must keep their meaning exactly: a property test compares the
resolver with the one it replaced.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.core.lines.records import Record
from sidecar.core.pipeline import Processor, RuleMiss
from sidecar.core.rules import RulesError, compile_rules, parse_rules
from sidecar.core.rules.paths import (
    Index,
    Key,
    MissingField,
    PathError,
    Select,
    field_path,
    format_path,
    lookup_path,
    parse_path,
)
from sidecar.core.rules.templates import TemplateError, compile_template
from sidecar.core.transitions import TransitionTracker
from sidecar.model import EventSpec

STATUS: dict[str, Any] = {
    "status": {
        "conditions": [
            {"type": "Progressing", "status": "True"},
            {"type": "Ready", "status": "False", "reason": "VolumeNotBound", "ok": False},
        ]
    },
    "fields": {"condition.type": "Ready", "condition": {"type": "nested"}},
    "resource.name": "mdc-key",
    "items[0]": "a key with brackets",
    "text": "abc",
}


@pytest.mark.parametrize(
    ("text", "steps"),
    [
        ("a", ("a",)),
        ("a.b.c", ("a", "b", "c")),
        ('fields["condition.type"]', ("fields", Key("condition.type"))),
        ("fields['condition.type']", ("fields", Key("condition.type"))),
        ('["a.b"].c', (Key("a.b"), "c")),
        ("conditions[0].reason", ("conditions", Index(0), "reason")),
        ("conditions[-1]", ("conditions", Index(-1))),
        ("conditions[type=Ready].reason", ("conditions", Select("type", "Ready"), "reason")),
        ('c[type="Ready ]"]', ("c", Select("type", "Ready ]"))),
        ('a["q\\"uote"]', ("a", Key('q"uote'))),
    ],
)
def test_parse_path(text: str, steps: tuple[Any, ...]) -> None:
    parsed = parse_path(text)
    assert parsed == steps
    assert [type(step) for step in parsed] == [type(step) for step in steps]
    assert parse_path(format_path(parsed)) == parsed


@pytest.mark.parametrize("text", ["", "a.", "a[", "a[]", "a[x]", "a[0", "a..b", "0a", "a.b()"])
def test_not_a_path(text: str) -> None:
    with pytest.raises(PathError):
        parse_path(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("status.conditions[type=Ready].reason", "VolumeNotBound"),
        ("status.conditions[1].reason", "VolumeNotBound"),
        ("status.conditions[-1].type", "Ready"),
        ("status.conditions[0]", {"type": "Progressing", "status": "True"}),
        ("status.conditions[ok=false].type", "Ready"),  # compared as text, as match does
        ('fields["condition.type"]', "Ready"),
        ("fields.condition.type", "nested"),
        ("resource.name", "mdc-key"),  # names only: first one key, as always
        ("items[0]", "a key with brackets"),  # a bracketed name that was a key keeps its meaning
    ],
)
def test_lookup(text: str, value: Any) -> None:
    assert lookup_path(STATUS, parse_path(text)) == value


@pytest.mark.parametrize(
    "text",
    [
        "status.conditions[2]",
        "status.conditions[-3]",
        "status.conditions[type=Healthy]",
        "status[0]",  # not a list
        "text[0]",  # a string is not indexed: data only
        "status.conditions.type",
        'fields["condition"].kind',
    ],
)
def test_absent_is_missing_named_as_written(text: str) -> None:
    with pytest.raises(MissingField) as raised:
        lookup_path(STATUS, parse_path(text))
    assert raised.value.path == format_path(parse_path(text))


def _old_lookup(data: dict[str, Any], path: tuple[str, ...]) -> Any:
    """The resolver before paths had brackets, verbatim."""
    if len(path) > 1:
        joined = ".".join(path)
        if joined in data:
            return data[joined]
    value: Any = data
    for key in path:
        if type(value) is not dict or key not in value:
            raise MissingField(".".join(path))
        value = value[key]
    return value


names = st.sampled_from(["a", "b", "a.b", "c", "b.c", "x-y", "@t"])
values = st.recursive(
    st.one_of(st.none(), st.integers(), st.text(max_size=3)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3),
    max_leaves=12,
)


@given(st.dictionaries(names, values, max_size=4), st.lists(names, min_size=1, max_size=4))
def test_names_only_mean_what_they_meant(data: dict[str, Any], steps: list[str]) -> None:
    name = ".".join(steps)
    path = field_path(name)
    assert path == tuple(name.split("."))
    try:
        old: Any = _old_lookup(data, tuple(name.split(".")))
    except MissingField as missing:
        old = ("missing", missing.path)
    try:
        new: Any = lookup_path(data, path)
    except MissingField as missing:
        new = ("missing", missing.path)
    assert new == old


def test_field_names_without_brackets_may_hold_anything() -> None:
    assert field_path("app.kubernetes.io/name") == ("app", "kubernetes", "io/name")
    assert field_path("a b") == ("a b",)


def test_templates_take_paths() -> None:
    template = compile_template('{status.conditions[type=Ready].reason} {fields["condition.type"]}')
    assert template.fields == ("status.conditions[type=Ready].reason", 'fields["condition.type"]')
    with pytest.raises(TemplateError, match="is not a field name"):
        compile_template("{a[b c]}")
    with pytest.raises(TemplateError, match="is not a field name"):
        compile_template("{a.b()}")


RULES = """
rules:
  - name: ready
    match:
      message: Status
      fields:
        "status.conditions[type=Ready].status": "False"
        "labels['app.kubernetes.io/name']": {exists: true}
    object: {kind: Database, ref: "refs[kind=Database]"}
    transition: {state: "{status.conditions[type=Ready].reason}", first: emit}
    reason: NotReady
    message: "{labels['app.kubernetes.io/name']}: {from} -> {to} ({status.conditions[0].type})"
"""


def status_line(reason: str, refs: list[dict[str, str]] | None = None) -> Record:
    return Record(
        message="Status",
        fields={
            "refs": refs
            if refs is not None
            else [
                {"kind": "Secret", "name": "s"},
                {"kind": "Database", "name": "db", "namespace": "ns"},
            ],
            "labels": {"app.kubernetes.io/name": "orders"},
            "status": {
                "conditions": [
                    {"type": "Progressing", "status": "True"},
                    {"type": "Ready", "status": "False", "reason": reason},
                ]
            },
        },
    )


def test_paths_in_match_object_transition_and_message() -> None:
    proc = Processor(compile_rules(parse_rules(RULES, "rules.yaml")), TransitionTracker())
    outcome = proc.process(status_line("VolumeNotBound"))
    assert isinstance(outcome, EventSpec)
    assert (outcome.target.namespace, outcome.target.name) == ("ns", "db")
    assert outcome.message == "orders: unknown -> VolumeNotBound (Progressing)"
    changed = proc.process(status_line("Restoring"))
    assert isinstance(changed, EventSpec)
    assert changed.message == "orders: VolumeNotBound -> Restoring (Progressing)"
    assert proc.process(status_line("X", refs=[{"kind": "Secret", "name": "s"}])) == RuleMiss(
        "ready", "refs[kind=Database]"
    )


def test_a_ref_path_to_a_bare_name_takes_the_namespace() -> None:
    rules = """
rules:
  - name: r
    match: {message: m}
    object: {kind: Lease, ref: "leases[0]", namespace: kube-system}
    reason: R
"""
    proc = Processor(compile_rules(parse_rules(rules, "rules.yaml")), TransitionTracker())
    outcome = proc.process(Record(message="m", fields={"leases": ["leader"]}))
    assert isinstance(outcome, EventSpec)
    assert (outcome.target.namespace, outcome.target.name) == ("kube-system", "leader")


def test_a_bad_path_in_match_or_ref_is_an_error_naming_it() -> None:
    with pytest.raises(RulesError, match=r"match.fields: 'a\[x' is not a field path"):
        parse_rules("rules: [{name: r, match: {fields: {'a[x': 1}}, reason: R}]", "rules.yaml")
    with pytest.raises(RulesError, match=r"object.ref: 'a\[' is not a field path"):
        parse_rules(
            "rules: [{name: r, match: {message: m}, object: {kind: Pod, ref: 'a['}, reason: R}]",
            "rules.yaml",
        )


def test_a_quoted_key_is_never_spelt_or_looked_up_as_dotted_names() -> None:
    plain, quoted = parse_path("a.b"), parse_path('a["b"]')
    assert plain == quoted  # a Key is the string it holds...
    assert (format_path(plain), format_path(quoted)) == ("a.b", 'a["b"]')  # ...not its spelling
    data = {"a.b": "joined", "a": {"b": "nested"}}
    assert lookup_path(data, plain) == "joined"
    assert lookup_path(data, quoted) == "nested"
