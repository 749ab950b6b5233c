"""A bad rules file stops start-up with the file, the line, the rule and what is wrong."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from sidecar.cli import main
from sidecar.core.rules import RulesError, load_rules

GOOD = """\
component: quota-autoscaler
rules:
  - name: quota-expanded
    match: {message: Quota evaluated}
    transition: {key: "{resource}", state: "{hard}"}
    reason: QuotaExpanded
    message: "{resource} {from} -> {to}"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(RulesError) as caught:
        load_rules(path)
    return [str(problem).replace(str(path), "rules.yaml") for problem in caught.value.problems]


def test_good_file_loads(tmp_path: Path) -> None:
    rules = load_rules(write(tmp_path, GOOD))
    assert rules.component == "quota-autoscaler"
    assert [rule.name for rule in rules.rules] == ["quota-expanded"]
    assert rules.literals == frozenset({b"Quota evaluated"})


def test_example_rules_are_valid() -> None:
    rules = load_rules(Path(__file__).parent.parent / "examples/quota-autoscaler.rules.yaml")
    assert len(rules.rules) == 5


def test_bad_level_names_file_line_rule_and_choices(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        rules:
          - name: ok
            match: {message: a}
            reason: Fine
          - name: loud
            match:
              message: b
              level: critical
            reason: Loud
        """,
    )
    assert len(found) == 1
    assert found[0].startswith("rules.yaml:8: rule loud: match.level.0: Input should be ")
    assert "'warning'" in found[0]


def test_reason_must_be_upper_camel_case(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        rules:
          - name: r1
            match: {message: a}
            reason: quota expanded
        """,
    )
    assert found == [
        "rules.yaml:4: rule r1: reason: 'quota expanded' is not a reason: Kubernetes reasons "
        "are UpperCamelCase (letters and digits, starting with a capital), like QuotaExpanded"
    ]


def test_unknown_key_is_an_error_not_ignored(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        rules:
          - name: r1
            match: {message: a}
            reason: Fine
            mesage: "{x}"
        """,
    )
    assert found == [
        "rules.yaml:5: rule r1: mesage: `mesage` is not a key of a rule (allowed: name, match, "
        "object, transition, cases, type, reason, message); did you mean `message`?"
    ]


def test_a_field_written_directly_under_match_gets_a_hint(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        rules:
          - name: r1
            match: {message: a, ready: "True"}
            reason: Fine
            object: {kind: Pod, nmae: x}
        """,
    )
    assert found == [
        "rules.yaml:3: rule r1: match.ready: `ready` is not a key of `match` (allowed: message, "
        "msg, level, logger, fields); did you mean `fields: {ready: ...}`?",
        "rules.yaml:5: rule r1: object.nmae: `nmae` is not a key of `object` (allowed: "
        "apiVersion, kind, ref, name, namespace, fieldPath); did you mean `name`?",
    ]
    assert not any("Extra inputs" in problem for problem in found)


def test_cases_need_a_transition_and_valid_keys(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        rules:
          - name: r1
            match: {message: a}
            reason: Fine
            cases: [{when: {too: Failed}, reason: not-camel}]
        """,
    )
    assert len(found) == 2, found
    assert "cases.0.when.too: `too` is not a key of `when` (allowed: to, from)" in found[0]
    assert "cases.0.reason: 'not-camel' is not a reason" in found[1]
    found = problems(
        tmp_path,
        """\
        rules:
          - name: r1
            match: {message: a}
            reason: Fine
            cases: [{when: {to: Failed}, type: Warning}]
        """,
    )
    assert len(found) == 1, found
    assert "cases choose the Event by the state a transition goes from and to" in found[0]


def test_unsafe_template_is_refused(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        rules:
          - name: r1
            match: {message: a}
            reason: Fine
            message: "{x.__class__} {y!r} {z:>99999999}"
        """,
    )
    assert len(found) == 1
    assert found[0].startswith("rules.yaml:5: rule r1: message: invalid template")
    assert "may not have a conversion or format spec" in found[0]


def test_attribute_like_template_path_is_a_dictionary_lookup_only(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        rules:
          - name: r1
            match: {message: a}
            reason: Fine
            message: "{x.upper()}"
        """,
    )
    # `{x[0]}` is a path now (a list element of the decoded line: see test_rules_paths.py);
    # a call is still no field name.
    assert "is not a field name" in found[0]


def test_bad_regex_names_the_pattern(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        rules:
          - name: r1
            match:
              fields:
                phase: {regex: "(unclosed"}
            reason: Fine
        """,
    )
    assert len(found) == 1
    assert found[0].startswith("rules.yaml:5: rule r1: match.fields.phase.regex: ")
    assert "invalid regular expression '(unclosed'" in found[0]


def test_duplicate_rule_names_and_duplicate_keys(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        rules:
          - name: same
            match: {message: a}
            reason: Fine
          - name: same
            match: {message: b, message: c}
            reason: Fine
        """,
    )
    assert found == [
        "rules.yaml:5: rule same: the name is already used by the rule on line 2; "
        "rule names must be unique",
        "rules.yaml:6: key 'message' appears twice in the same mapping",
    ]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        rules:
          - name: Bad Name
            match: {}
            type: Info
            reason: Fine
        """,
    )
    assert [line.split(":")[1] for line in found] == ["2", "3", "4"]
    assert "rule Bad Name: name: 'Bad Name' is not a rule name" in found[0]
    assert "match needs at least one of message, level, logger, fields" in found[1]
    assert "type: Input should be 'Normal' or 'Warning'" in found[2]


def test_unnamed_rule_is_named_by_position(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        rules:
          - match: {message: a}
            reason: Fine
        """,
    )
    assert found == ["rules.yaml:2: rule #1: `name` is required here"]


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    found = problems(tmp_path, "rules:\n  - name: a\n   bad: [\n")
    assert found[0].startswith("rules.yaml:3: invalid YAML")


def test_empty_and_unreadable_files(tmp_path: Path) -> None:
    assert problems(tmp_path, "") == ["rules.yaml:1: the file is empty"]
    with pytest.raises(RulesError, match="cannot read"):
        load_rules(tmp_path / "missing.yaml")


def test_object_must_be_auto_or_mapping(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        rules:
          - name: r1
            match: {message: a}
            object: manual
            reason: Fine
        """,
    )
    assert found == [
        "rules.yaml:4: rule r1: object: object is 'auto' or a mapping with kind, not 'manual'"
    ]


def test_check_command_exits_2_and_prints_each_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        """\
        rules:
          - name: r1
            match: {message: a}
            reason: not-camel
        """,
    )
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}:4: rule r1: reason: ")


def test_check_command_accepts_a_good_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", str(write(tmp_path, GOOD))]) == 0
    assert "1 rules OK" in capsys.readouterr().out


def test_fields_that_decoders_lift_out_are_refused_with_a_hint(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        rules:
          - name: r1
            match: {fields: {logger: controller, phase: Ready}}
            reason: Fine
        """,
    )
    assert len(found) == 1
    assert found[0].startswith("rules.yaml:3: rule r1: match.fields: logger never reach fields")
    assert "match them with message:, level: or logger:" in found[0]
