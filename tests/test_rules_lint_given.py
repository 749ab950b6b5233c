"""`check`: templates, transition states and keys that name a field or a group nothing gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.core.rules.lint import lint_rules

ROOT = Path(__file__).resolve().parent.parent


def warnings(rule: str) -> list[str]:
    named = "{name: r, match" if "reason:" in rule else "{name: r, reason: R, match"
    text = "rules: [" + rule.replace("{match", named, 1) + "]"
    return [problem.message for problem in lint_rules(text, "rules.yaml", {})]


@pytest.mark.parametrize(
    ("rule", "wanted"),
    [
        # A group inside `not:` captures nothing: the regex holds where it does not match.
        (
            '{match: {message: {not: {regex: "code (?P<code>[0-9]+)"}}}, '
            'object: {kind: Node, name: n}, message: "{code}"}',
            "`{code}`: the group code is in a `not:` or a case's `when`",
        ),
        # A group in a case's `when` tests the state; it captures nothing either.
        (
            '{match: {message: m}, object: {kind: Node, name: n}, transition: {state: "{s}"}, '
            'cases: [{when: {to: {regex: "(?P<phase>.+)ed"}}, message: "{phase}"}]}',
            "`{phase}`: the group phase is in a `not:` or a case's `when`",
        ),
        # The transition's state is rendered before there is a change: {to} is a field there.
        (
            '{match: {message: m}, object: {kind: Node, name: n}, transition: {state: "{to}"}}',
            "`{to}` is the state a transition goes to only in messages and reasons",
        ),
        # No transition: no states at all.
        (
            '{match: {message: m}, object: {kind: Node, name: n}, message: "{from} -> x"}',
            "not in a rule without a transition",
        ),
        # A field the match excludes, read by the state, a reason or the first-sighting message.
        (
            "{match: {message: m, fields: {phase: {exists: false}}}, "
            'object: {kind: Node, name: n}, transition: {state: "{phase}"}}',
            "`{phase}`: the rule matches only lines without phase",
        ),
        (
            "{match: {message: m, fields: {code: {exists: false}}}, "
            'object: {kind: Node, name: n}, reason: "{code|camel}"}',
            "`{code}`: the rule matches only lines without code",
        ),
        (
            "{match: {message: m, fields: {why: {exists: false}}}, object: {kind: Node, name: n}, "
            'transition: {state: "{s}", first: emit, first_message: "{why}"}}',
            "`{why}`: the rule matches only lines without why",
        ),
    ],
)
def test_check_warns_about_what_nothing_gives(rule: str, wanted: str) -> None:
    found = warnings(rule)
    assert len(found) == 1, found
    assert wanted in found[0]


@pytest.mark.parametrize(
    "rule",
    [
        # The states, where they are the states: messages, reasons, the first-sighting message.
        '{match: {message: m}, object: {kind: Node, name: n}, transition: {state: "{s}", '
        'first: emit, first_message: "is {to}"}, reason: "{to|camel}", message: "{from} {to}"}',
        # The group also captures in the match's own regex.
        '{match: {message: {regex: "(?P<code>[0-9]+)"}, logger: {not: {regex: "(?P<code>x)"}}}, '
        'object: {kind: Node, name: n}, message: "{code}"}',
        # A group named `to` in the match's regex gives `{to}` anywhere.
        '{match: {message: {regex: "to (?P<to>[a-z]+)"}}, object: {kind: Node, name: "{to}"}}',
    ],
)
def test_check_says_nothing_where_something_gives_it(rule: str) -> None:
    assert warnings(rule) == []


def test_no_shipped_rules_file_warns_about_what_nothing_gives() -> None:
    files = [*ROOT.glob("examples/*.rules.yaml"), *ROOT.glob("tests/golden/*/rules.yaml")]
    assert files
    for path in files:
        for problem in lint_rules(path.read_text(encoding="utf-8"), str(path), {}):
            assert "capture nothing" not in problem.message, problem
            assert "is the state a transition goes" not in problem.message, problem
