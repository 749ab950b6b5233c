"""Hostile rules files: refused with exit 2 and the line named, in time linear in the file.

A 9x9 alias bomb cost 80 s of CPU at every start (the duplicate-key walk followed the aliases), and
2,000 nested `[` ended in a RecursionError traceback (exit 1).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.cli import main
from sidecar.records import Record
from sidecar.rules import RulesError, load_rules
from tests.faults.scaling import MAX_RATIO, cost_ratio

RULE = """\
component: c
rules:
  - name: r
    match: {message: m}
    reason: R
    message: x
"""


def alias_bomb() -> str:
    """The classic billion laughs in nine levels of nine aliases, after a valid rule."""
    lines = [RULE.rstrip("\n"), 'a0: &a0 ["lol"]']
    for level in range(1, 10):
        previous = ", ".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{previous}]")
    return "\n".join(lines) + "\n"


def check(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> str:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    assert main(["check", str(path)]) == 2
    return capsys.readouterr().err.replace(str(path), "rules.yaml")


def test_alias_bomb_is_refused_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = check(tmp_path, alias_bomb(), capsys)
    assert err.startswith("error: rules.yaml:7: YAML anchors and aliases"), err


def test_a_single_alias_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = RULE.replace("match: {message: m}", "match: &m {message: m}") + "x: *m\n"
    err = check(tmp_path, text, capsys)
    assert err.startswith("error: rules.yaml:4: YAML anchors"), err


@pytest.mark.parametrize("opener", ["[", "{a: "])
def test_deep_nesting_is_refused_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], opener: str
) -> None:
    closer = "]" if opener == "[" else "}"
    text = RULE + "deep:\n  " + opener * 2000 + closer * 2000 + "\n"
    err = check(tmp_path, text, capsys)
    assert err.startswith("error: rules.yaml:8: mappings and lists are nested more than"), err


def test_nesting_within_the_bound_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULE.replace("match: {message: m}", "match: {fields: {a: {any: [[1]]}}}"))
    with pytest.raises(RulesError) as caught:
        load_rules(path)
    # A schema error (a list is no scalar), not a structure one: the file got past the pass.
    assert "nested" not in str(caught.value)
    assert "aliases" not in str(caught.value)


def regex_rules(tmp_path: Path, pattern: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(
        RULE.replace("match: {message: m}", f"match: {{message: {{regex: '{pattern}'}}}}")
    )
    return path


def test_catastrophic_rule_regex_matches_in_linear_time(tmp_path: Path) -> None:
    """`(a+)+$` took 104 s on a 31-byte message under a backtracking engine."""
    rules = load_rules(regex_rules(tmp_path, "(a+)+$"))
    assert rules.first_match(Record(message="a" * 30 + "!")) is None
    assert rules.first_match(Record(message="b" + "a" * 30)) is not None

    def match(n: int) -> object:
        return rules.first_match(Record(message="a" * n + "!"))

    ratio = cost_ratio(match, 1_000)
    assert ratio < MAX_RATIO, f"16x longer message cost {ratio:.1f}x"


def test_polynomial_rule_regex_matches_in_linear_time(tmp_path: Path) -> None:
    rules = load_rules(regex_rules(tmp_path, "x*x*y"))
    ratio = cost_ratio(lambda n: rules.first_match(Record(message="x" * n)), 100)
    assert ratio < MAX_RATIO, f"16x longer message cost {ratio:.1f}x"


@pytest.mark.parametrize("pattern", ["(?<=a)b", "(a)\\1"])
def test_check_refuses_what_needs_backtracking(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pattern: str
) -> None:
    path = regex_rules(tmp_path, pattern)
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err.replace(str(path), "rules.yaml")
    assert err.startswith("error: rules.yaml:4: rule r: match.message.regex: invalid regular"), err
