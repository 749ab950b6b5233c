"""Capture groups, `not:` and `emit: false` in rules files: pure tests of the compiled rules.

The pre-filter must keep working for a rule whose state comes from a capture: the literals a
`regex:` requires are derived (`sidecar.core.rules.regex.required_strings`), and the pre-filter
stays an optimisation only (the same Events with and without it).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar.core.explain import explain_line, format_text, to_json
from sidecar.core.lines.records import Record
from sidecar.core.pipeline import Consumed, Processor, RuleMiss, Unchanged
from sidecar.core.rules import RulesError, compile_rules, parse_rules
from sidecar.core.rules.lint import lint_rules
from sidecar.core.rules.regex import required_strings
from sidecar.core.transitions import TransitionTracker
from sidecar.model import EventSpec
from tests.test_rules_engine import MESSAGES, MIXED_LOG, outcomes_of, without_prefilter


def processor(text: str) -> Processor:
    return Processor(compile_rules(parse_rules(text, "rules.yaml")), TransitionTracker())


def line(message: str, **fields: Any) -> Record:
    return Record(message=message, fields=dict(fields), time=1.0)


PHASE_RULES = """
rules:
  - name: phase
    match:
      message:
        regex: "^Phase of (?P<obj>[a-z0-9-]+/[a-z0-9-]+) \\
          changed to (?P<phase>\\\\w+)(?:: (?P<why>.+))?$"
    object: {apiVersion: example.com/v1, kind: Database, ref: obj}
    transition: {state: "{phase}", first: emit}
    cases:
      - when: {to: Failed}
        type: Warning
        reason: Failed
        message: "{why}"
    reason: PhaseChanged
    message: "{from} -> {to}"
"""


# --- captures -----------------------------------------------------------------------------------


def test_named_groups_are_fields_for_object_state_and_message() -> None:
    proc = processor(PHASE_RULES)
    first = proc.process(line("Phase of shop/db-1 changed to Pending"))
    assert isinstance(first, EventSpec)
    assert (first.target.kind, first.target.namespace, first.target.name) == (
        "Database",
        "shop",
        "db-1",
    )
    assert first.message == "unknown -> Pending"
    assert type(proc.process(line("Phase of shop/db-1 changed to Pending"))) is Unchanged
    failed = proc.process(line("Phase of shop/db-1 changed to Failed: disk full"))
    assert isinstance(failed, EventSpec)
    assert (failed.type, failed.reason, failed.message) == ("Warning", "Failed", "disk full")
    # Another object has its own state: the object came from the capture.
    other = proc.process(line("Phase of shop/db-2 changed to Failed: quota"))
    assert isinstance(other, EventSpec) and other.target.name == "db-2"


def test_a_group_that_took_no_part_is_a_missing_field() -> None:
    proc = processor(PHASE_RULES)
    proc.process(line("Phase of shop/db-1 changed to Pending"))
    outcome = proc.process(line("Phase of shop/db-1 changed to Failed"))
    assert outcome == RuleMiss("phase", "why")


def test_captures_hide_fields_of_the_same_name_for_the_rule_only() -> None:
    proc = processor(
        """
rules:
  - name: r
    match: {message: {regex: "to (?P<phase>\\\\w+)"}}
    object: {kind: Node, name: "{node}"}
    reason: R
    message: "{phase}"
"""
    )
    record = line("moved to Ready", node="n1", phase="Stale")
    outcome = proc.process(record)
    assert isinstance(outcome, EventSpec) and outcome.message == "Ready"
    assert record.fields == {"node": "n1", "phase": "Stale"}  # the line itself is unchanged


def test_captures_from_logger_and_field_conditions() -> None:
    proc = processor(
        """
rules:
  - name: r
    match:
      logger: {regex: "^controller\\\\.(?P<controller>[a-z]+)$"}
      fields: {ref: {regex: "^(?P<kind>[A-Z][a-z]+)\\\\((?P<ns>[a-z-]+)/(?P<n>[a-z0-9-]+)\\\\)$"}}
    object: {kind: Pod, name: "{n}", namespace: "{ns}"}
    reason: R
    message: "{controller} saw {kind}"
"""
    )
    record = Record(message="x", logger="controller.pods", fields={"ref": "Pod(default/web-1)"})
    outcome = proc.process(record)
    assert isinstance(outcome, EventSpec)
    assert (outcome.target.namespace, outcome.target.name, outcome.message) == (
        "default",
        "web-1",
        "pods saw Pod",
    )


def test_rules_without_named_groups_compile_no_capture() -> None:
    rules = compile_rules(
        parse_rules(
            'rules: [{name: r, match: {message: {regex: "^a(b)"}}, reason: R}]', "rules.yaml"
        )
    )
    assert rules.rules[0].captures is None


# --- the pre-filter with regexes ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("Phase changed to (?P<phase>\\w+)", [{"Phase changed to "}]),
        ("^(ab|cd)e", [{"ab", "cd"}, {"e"}]),
        ("ab+c", [{"a"}, {"b"}, {"c"}]),
        ("(?:x|)y", [{"y"}]),
        ("a?b*c{0,2}", []),
        ("(?i)ready", []),
        ("x(?i:abc)yz", [{"x"}, {"yz"}]),
        # Python's parser would read a POSIX class as a set and a literal `]`.
        ("[[:alpha:]]+ done", []),
        # RE2-only syntax: Python refuses it, so nothing is derived.
        ("\\pL+ done", []),
        ("\\Qa.b\\E", []),
        # RE2 reads `a{,2}` literally, Python as a repeat: a shorter string, still required.
        ("a{,2}b", [{"b"}]),
    ],
)
def test_required_strings(pattern: str, expected: list[set[str]]) -> None:
    assert required_strings(pattern) == [frozenset(strings) for strings in expected]


def literals_of(condition: Any, where: str = "message") -> frozenset[bytes] | None:
    match = {where: condition} if where != "field" else {"fields": {"f": condition}}
    rules = compile_rules(
        parse_rules(json.dumps({"rules": [{"name": "r", "match": match, "reason": "R"}]}), "r")
    )
    return rules.literals


def test_a_rule_whose_state_is_captured_keeps_the_pre_filter() -> None:
    rules = compile_rules(parse_rules(PHASE_RULES, "rules.yaml"))
    assert rules.literals == frozenset({b" changed to "})
    assert literals_of({"regex": "^Phase (?P<p>\\w+)"}) == frozenset({b"Phase "})
    assert literals_of({"regex": "(?:失败|成功)了"}, "logger") is not None
    # Alternatives: any one of them will do.
    assert literals_of({"regex": "^(Created|Deleted) pods in"}) == frozenset({b" pods in"})
    assert literals_of({"regex": "^(Created|Deleted)"}) == frozenset({b"Created", b"Deleted"})


def test_field_regexes_give_no_literal_a_number_or_an_object_may_spell_otherwise() -> None:
    # `{"a": 1}` in the line is `{"a":1}` to the regex; 1e5 is 100000.0.
    assert literals_of({"regex": ":1"}, "field") is None
    assert literals_of({"regex": "100000"}, "field") is None
    assert literals_of({"regex": "Ready"}, "field") == frozenset({b"Ready"})


def test_not_gives_no_literal() -> None:
    assert literals_of({"not": "Reconciled"}) is None


def _escape(text: str) -> str:
    return "".join("\\" + char if char in "\\.+*?()|[]{}^$" else char for char in text)


@st.composite
def regex_rules(draw: st.DrawFn) -> str:
    rules = []
    for index in range(draw(st.integers(1, 3))):
        message = draw(st.sampled_from(MESSAGES or ["x"]))
        start = draw(st.integers(0, max(0, len(message) - 1)))
        end = draw(st.integers(start, len(message)))
        pattern = _escape(message[start:end])
        head = draw(st.sampled_from(["", "^", "(?P<a>.*)", "(?:x|"]))
        tail = draw(st.sampled_from(["", "$", "(?P<b>\\w*)", "(?P<c>[^ ]+)?"]))
        pattern = head + pattern + (")" if head == "(?:x|" else tail)
        rules.append(
            {
                "name": f"r{index}",
                "match": {"message": {"regex": pattern}},
                "object": {"kind": "Pod", "name": "n"},
                "reason": "R",
                "message": draw(st.sampled_from(["{message}", "{a}", "{b}{c}", "x"])),
                "emit": draw(st.sampled_from([True, True, False])),
            }
        )
    return json.dumps({"rules": rules})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(regex_rules())
def test_the_pre_filter_changes_nothing_for_regex_rules(text: str) -> None:
    rules = compile_rules(parse_rules(text, "rules.yaml"))
    assert outcomes_of(rules, MIXED_LOG) == outcomes_of(without_prefilter(rules), MIXED_LOG)


# --- not ----------------------------------------------------------------------------------------

NOT_RULES = """
rules:
  - name: r
    match: {message: Sync, fields: {result: {not: success}, phase: {not: {regex: "^Run"}}}}
    object: {kind: Node, name: n}
    reason: R
"""


@pytest.mark.parametrize(
    ("fields", "matches"),
    [
        ({"result": "partial"}, True),
        ({}, True),  # absent: not `success`, and not matching ^Run
        ({"result": "success"}, False),
        ({"result": "partial", "phase": "Running"}, False),
        ({"result": "partial", "phase": "Pending"}, True),
    ],
)
def test_not_holds_where_the_condition_does_not(fields: dict[str, Any], matches: bool) -> None:
    outcome = processor(NOT_RULES).process(line("Sync", **fields))
    assert isinstance(outcome, EventSpec) is matches


def test_not_in_a_case_and_nested() -> None:
    proc = processor(
        """
rules:
  - name: r
    match: {message: {not: {not: Sync}}}
    object: {kind: Node, name: n}
    transition: {state: "{phase}", first: emit}
    cases:
      - when: {to: {not: {any: [Ready, Running]}}}
        type: Warning
        reason: Unhealthy
    reason: Fine
"""
    )
    assert proc.process(line("Other", phase="Ready")) is None
    ready = proc.process(line("Sync", phase="Ready"))
    broken = proc.process(line("Sync", phase="Broken"))
    assert isinstance(ready, EventSpec) and ready.reason == "Fine"
    assert isinstance(broken, EventSpec) and broken.reason == "Unhealthy"


def test_not_with_another_form_is_an_error() -> None:
    with pytest.raises(RulesError, match="exactly one of equals, any, regex, exists, not"):
        parse_rules(
            "rules: [{name: r, match: {message: {not: a, regex: b}}, reason: R}]", "rules.yaml"
        )


def test_not_is_named_among_the_condition_keys() -> None:
    with pytest.raises(RulesError, match="allowed: equals, any, regex, exists, not"):
        parse_rules("rules: [{name: r, match: {message: {nto: a}}, reason: R}]", "rules.yaml")
    # Only as the file spells it: the attribute's name is no key.
    with pytest.raises(RulesError, match="`not_` is not a key of a condition"):
        parse_rules("rules: [{name: r, match: {message: {not_: a}}, reason: R}]", "rules.yaml")


def test_check_never_says_exists_covers_not() -> None:
    text = """
rules:
  - name: first
    match: {fields: {a: {exists: true}}}
    reason: A
  - name: later
    match: {fields: {a: {not: x}}}
    reason: B
"""
    assert [p for p in lint_rules(text, "rules.yaml", {}) if "never matches" in p.message] == []


def test_check_still_warns_about_yaml_values_inside_not() -> None:
    text = "rules: [{name: r, match: {fields: {ready: {not: true}}}, reason: R}]"
    (problem,) = lint_rules(text, "rules.yaml", {})
    assert "boolean true" in problem.message


# --- emit: false --------------------------------------------------------------------------------

CONSUME_RULES = """
rules:
  - name: conflicts
    match: {message: Reconciler error, fields: {error: {regex: "has been modified"}}}
    emit: false
  - name: errors
    match: {message: Reconciler error}
    object: {kind: Node, name: n}
    type: Warning
    reason: ReconcileError
    message: "{error}"
"""


def test_emit_false_consumes_the_line_before_later_rules() -> None:
    proc = processor(CONSUME_RULES)
    assert proc.process(line("Reconciler error", error="the object has been modified")) == (
        Consumed("conflicts")
    )
    outcome = proc.process(line("Reconciler error", error="image not found"))
    assert isinstance(outcome, EventSpec) and outcome.rule == "errors"


def test_emit_false_needs_no_reason_and_takes_no_transition() -> None:
    assert parse_rules(CONSUME_RULES, "rules.yaml").rules[0].emit is False
    with pytest.raises(RulesError, match="use a case with emit: false"):
        parse_rules(
            "rules: [{name: r, match: {message: a}, emit: false, transition: {state: x}}]",
            "rules.yaml",
        )
    with pytest.raises(RulesError, match="reason"):
        parse_rules("rules: [{name: r, match: {message: a}}]", "rules.yaml")


def test_consumed_lines_count_as_matches_without_events() -> None:
    rules = compile_rules(parse_rules(CONSUME_RULES, "rules.yaml"))
    block = (
        b'{"level":"error","msg":"Reconciler error","error":"the object has been modified"}\n'
        b'{"level":"error","msg":"Reconciler error","error":"boom"}\n'
    )
    _, (matched, missed, unchanged, made) = outcomes_of(rules, block)
    assert (matched, missed, unchanged, made) == (2, 0, 0, 1)


def test_explain_says_a_line_was_consumed_and_what_was_captured() -> None:
    proc = processor(CONSUME_RULES)
    traced = explain_line(
        proc,
        b'{"level":"error","msg":"Reconciler error","error":"it has been modified"}',
        1,
        year=2026,
        max_line_bytes=1000,
    )
    assert to_json(traced, None)["verdict"] == "consumed"
    assert "emit: false: the line is consumed" in format_text(traced, None)

    captured = explain_line(
        processor(PHASE_RULES),
        b'level=info msg="Phase of shop/db-1 changed to Ready"',
        1,
        year=2026,
        max_line_bytes=1000,
    )
    assert to_json(captured, None)["captures"] == {"obj": "shop/db-1", "phase": "Ready"}
    assert "captures: obj=shop/db-1 phase=Ready" in format_text(captured, None)


# --- check: templates that nothing can give -----------------------------------------------------


def never_given(text: str) -> list[str]:
    return [p.message for p in lint_rules(text, "rules.yaml", {}) if "no named group" in p.message]


def test_check_warns_about_a_template_reading_a_field_the_match_excludes() -> None:
    found = never_given(
        """
rules:
  - name: r
    match: {message: m, fields: {error: {exists: false}, why: {not: {exists: true}}}}
    object: {kind: Node, name: "{node}"}
    reason: R
    message: "{error} {why} {other}"
"""
    )
    assert len(found) == 2
    assert "`{error}`: the rule matches only lines without error" in found[0]
    assert "`{why}`" in found[1]


@pytest.mark.parametrize(
    "rule",
    [
        # A named group gives it.
        '{match: {message: {regex: "(?P<error>x)"}, fields: {error: {exists: false}}}, '
        'message: "{error}"}',
        # A transition's message reads the states as {from} and {to}.
        '{match: {fields: {to: {exists: false}}}, transition: {state: "{s}"}, message: "{to}"}',
        # A rule that emits nothing renders nothing.
        '{match: {fields: {error: {exists: false}}}, emit: false, message: "{error}"}',
        # Not certain: the key `error.code` may be in the line.
        '{match: {fields: {error: {exists: false}}}, message: "{error.code}"}',
    ],
)
def test_check_says_nothing_where_it_is_not_certain(rule: str) -> None:
    text = "rules: [" + rule.replace("{match", "{name: r, reason: R, match", 1) + "]"
    assert never_given(text) == []
