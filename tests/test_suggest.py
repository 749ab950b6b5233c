"""`event-sidecar suggest`: a draft that passes `check` and replays to Events on every log."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sidecar.cli import main
from sidecar.core.lines.records import Record
from sidecar.core.rules import compile_rules, parse_rules
from sidecar.core.rules.draft import draft_rules
from sidecar.core.rules.lint import lint_rules
from sidecar.offline.rulestests import run_tests

ROOT = Path(__file__).resolve().parent.parent
LOGS = sorted(
    [*ROOT.glob("examples/*.log"), *ROOT.glob("tests/golden/*/input.log")],
    key=str,
)
#: The only warning a draft may carry: the draft names a kind by its field, and whether the
#: field's values are always `namespace/name` is the person's to judge.
BARE_NAMES = "is a bare name"


def _replay(rules: Path, log: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, int]:
    capsys.readouterr()
    args = ["replay", "--rules", str(rules), str(log), "-o", "none", "--summary", "json"]
    assert main(args) == 0
    summary: dict[str, int] = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    return summary


@pytest.mark.parametrize("log", LOGS, ids=lambda path: path.parent.name + "/" + path.name)
def test_the_draft_of_every_shipped_log_checks_and_replays_to_events(
    log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules, tests = tmp_path / "draft.rules.yaml", tmp_path / "draft.tests.yaml"
    year = ["--year", "2026"]
    assert main(["suggest", str(log), "-o", str(rules), "--tests", str(tests), *year]) == 0
    text = rules.read_text(encoding="utf-8")
    warnings = lint_rules(text, str(rules), os.environ)
    assert all(BARE_NAMES in problem.message for problem in warnings), warnings
    assert main(["check", str(rules)]) == 0
    summary = _replay(rules, log, capsys)
    assert summary["events"] > 0
    assert summary["rule_misses"] == 0 or summary["events"] > summary["rule_misses"]
    results = run_tests(tests)
    assert results and all(result.passed for result in results), [r.diff for r in results]


def _line(time: int, name: str, phase: str, level: str = "info", **more: str) -> str:
    fields = {
        "level": level,
        "ts": f"2026-12-06T01:{time // 60:02d}:{time % 60:02d}Z",
        "msg": "Observed phase",
        "phase": phase,
        "Database": {"name": name, "namespace": "shop"},
        **more,
    }
    return json.dumps(fields)


def test_a_state_field_becomes_a_transition_whose_failures_are_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    phases = ["Pending", "Pending", "Provisioning", "Ready", "Ready", "Degraded", "Ready"]
    lines = [_line(n * 2 + k, name, p) for n, p in enumerate(phases) for k, name in enumerate("ab")]
    lines += [
        _line(30 + n, "b", "Ready", "error", msg="Backup failed", error="disk full")
        for n in range(3)
    ]
    log = tmp_path / "made.log"
    log.write_text("\n".join(lines) + "\n")
    rules = tmp_path / "made.rules.yaml"
    assert main(["suggest", str(log), "-o", str(rules)]) == 0
    parsed = parse_rules(rules.read_text(), str(rules))
    phase = next(rule for rule in parsed.rules if rule.transition is not None)
    assert phase.transition is not None and phase.transition.state == "{phase}"
    assert phase.object is not None and phase.object.kind == "Database"
    assert [case.type for case in phase.cases] == ["Warning"]
    backup = next(rule for rule in parsed.rules if rule.transition is None)
    assert backup.type == "Warning" and backup.message == "{error}"
    capsys.readouterr()
    assert main(["replay", "--rules", str(rules), str(log), "-o", "json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    kinds = sorted((event["type"], event["reason"], event["count"]) for event in events)
    assert kinds.count(("Warning", "PhaseFailed", 1)) == 2  # each Database entered Degraded
    assert ("Warning", "BackupFailed", 3) in kinds


def test_a_state_word_of_the_message_is_captured(tmp_path: Path) -> None:
    """kopf's text format: the object is `[namespace/name]`, the state a word of the message."""
    log = tmp_path / "kopf.log"
    states = ["Pending", "Creating", "Ready", "Failed", "Ready"]
    log.write_text(
        "".join(
            f"[2026-12-06 01:38:2{n},903] kopf.objects         [INFO    ] [shop/db-{k}] "
            f"Phase changed to {state}\n"
            for n, state in enumerate(states)
            for k in (1, 2)
        )
    )
    rules = tmp_path / "kopf.rules.yaml"
    tests = tmp_path / "kopf.tests.yaml"
    assert main(["suggest", str(log), "-o", str(rules), "--tests", str(tests)]) == 0
    text = rules.read_text()
    assert "(?P<phase>" in text and 'kind: "ChangeMe"' in text
    parsed = parse_rules(text, str(rules))
    assert parsed.rules[0].cases[0].when is not None
    results = run_tests(tests)
    assert [result.passed for result in results] == [True, True]


def test_a_dimension_that_changes_on_every_line_becomes_the_key(tmp_path: Path) -> None:
    """`resource` alternates cpu, memory on every line: not a state, but the key of `hard`."""
    lines = []
    for n, hard in enumerate(["1", "1", "1", "2", "2", "2", "4", "4"]):
        for resource in ("cpu", "memory"):
            lines.append((f"line {n} {resource}", _quota(n, resource, hard)))
    draft = draft_rules(lines, "quota")
    assert draft is not None
    assert 'transition: {key: "{resource}", state: "{hard}"' in draft.text


def _quota(n: int, resource: str, hard: str) -> Record:
    fields = {
        "resource": resource,
        "hard": hard + ("Gi" if resource == "memory" else ""),
        "controllerGroup": "example.com",
        "controllerKind": "Quota",
        "Quota": {"name": "q", "namespace": "team"},
    }
    return Record("Quota evaluated", time=1_700_000_000.0 + n, fields=fields)


def test_a_log_naming_no_object_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "plain.log"
    log.write_text('{"level":"info","msg":"started"}\n')
    assert main(["suggest", str(log)]) == 1
    assert "no line names an object" in capsys.readouterr().err
    assert main(["suggest", str(log), "--tests", str(tmp_path / "t.yaml")]) == 2


def test_the_draft_is_printed_and_compiles(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["suggest", str(ROOT / "examples" / "quota-autoscaler.log")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# A first draft of rules")
    compile_rules(parse_rules(out, "stdout"))
