"""`check`'s warnings: valid rules files that probably do not do what their author means."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from sidecar.cli import main
from sidecar.core.rules import RulesError
from sidecar.core.rules.lint import lint_rules


def lint(text: str, env: dict[str, str] | None = None) -> list[str]:
    return [str(problem) for problem in lint_rules(textwrap.dedent(text), "r.yaml", env or {})]


def test_yaml_non_strings_are_named_with_how_they_compare() -> None:
    found = lint(
        """\
        rules:
          - name: r1
            match:
              message: Observed
              fields:
                ready: True
                ratio: 1.0
                owner: null
                phase: {any: [Ready, 3]}
                quoted: "True"
            reason: Fine
        """
    )
    assert len(found) == 4, found
    assert found[0].startswith(
        "r.yaml:6: rule r1: match.fields.ready: YAML reads this as the boolean"
    )
    assert "true/True/TRUE" in found[0]
    assert found[1].startswith(
        "r.yaml:7: rule r1: match.fields.ratio: YAML reads this as the number"
    )
    assert found[2].startswith("r.yaml:8: rule r1: match.fields.owner: YAML reads this as null")
    assert "{exists: false}" in found[2]
    assert found[3].startswith(
        "r.yaml:9: rule r1: match.fields.phase: YAML reads this as the number 3"
    )


def test_a_rule_shadowed_by_an_earlier_one_is_named() -> None:
    found = lint(
        """\
        rules:
          - name: broad
            match: {message: Observed, fields: {phase: {exists: true}}}
            reason: Broad
          - name: narrow
            match: {message: Observed, level: error, fields: {phase: Failed, extra: x}}
            reason: Narrow
          - name: other-message
            match: {message: Different, fields: {phase: Failed}}
            reason: Other
          - name: any-covers
            match: {message: {any: [Different, Again]}}
            reason: Any
          - name: covered-by-any
            match: {message: Again}
            reason: Covered
        """
    )
    assert found == [
        "r.yaml:6: rule narrow: never matches: rule broad comes first and matches every line "
        "this one does (rules are tried in order; move this one up or narrow the earlier one)",
        "r.yaml:15: rule covered-by-any: never matches: rule any-covers comes first and matches "
        "every line this one does (rules are tried in order; move this one up or narrow the "
        "earlier one)",
    ]


def test_the_same_field_tracked_apart_by_accident_is_named() -> None:
    rules = """\
        rules:
          - name: failed
            match: {message: Observed, fields: {phase: Failed}}
            transition: {state: "{phase}"%s}
            type: Warning
            reason: Failed
          - name: changed
            match: {message: Observed}
            transition: {state: "{phase}"%s}
            reason: Changed
        """
    found = lint(rules % ("", ""))
    assert len(found) == 1
    assert found[0].startswith("r.yaml:9: rule changed: tracks the same state `{phase}`")
    assert "same `tracker:`" in found[0]
    assert lint(rules % (", tracker: phase", ", tracker: phase")) == []


def test_ref_fields_of_namespaced_kinds_and_unset_env() -> None:
    rules = """\
        rules:
          - name: r1
            match: {message: Observed}
            object: {kind: Pod, ref: pod%s}
            reason: Fine
          - name: node
            match: {message: Node}
            object: {kind: Node, ref: node}
            reason: Fine
        """
    found = lint(rules % "")
    assert len(found) == 1
    assert found[0].startswith("r.yaml:4: rule r1: `ref: pod`: a line whose pod is a bare name")
    with_namespace = rules % ', namespace: "{env.POD_NAMESPACE}"'
    assert lint(with_namespace, {"POD_NAMESPACE": "x"}) == []
    found = lint(with_namespace)
    assert len(found) == 1
    assert "`{env.POD_NAMESPACE}`: POD_NAMESPACE is not set" in found[0]


def test_cases_after_a_catch_all_case_are_named() -> None:
    found = lint(
        """\
        rules:
          - name: r1
            match: {message: Observed}
            object: {kind: Node, name: n1}
            transition: {state: "{phase}"}
            cases:
              - {reason: Always}
              - {when: {to: Failed}, type: Warning}
            reason: Fine
        """
    )
    assert len(found) == 1
    assert found[0].startswith("r.yaml:8: rule r1: cases after case 1 are never used")


def test_an_invalid_file_raises_rather_than_warns() -> None:
    with pytest.raises(RulesError):
        lint("rules: []\n")


def test_check_prints_warnings_and_fails_only_when_strict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "rules:\n  - name: r1\n    match: {fields: {ready: true}}\n"
        "    object: {kind: Node, name: n1}\n    reason: Fine\n"
    )
    assert main(["check", str(path)]) == 0
    captured = capsys.readouterr()
    assert f"warning: {path}:3: rule r1: match.fields.ready: YAML reads this" in captured.err
    assert "1 rules OK (component event-sidecar), 1 warnings" in captured.out
    assert main(["check", "--strict", str(path)]) == 1
    assert "1 warnings (--strict)" in capsys.readouterr().err
