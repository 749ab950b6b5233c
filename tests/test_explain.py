"""`event-sidecar explain`: the trace comes from the production matcher and says why."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from sidecar.cli import main
from sidecar.core.explain import explain_line, format_text, to_json
from sidecar.core.pipeline import Processor, RuleMiss, Unchanged
from sidecar.core.rules import compile_rules, parse_rules
from sidecar.core.transitions import TransitionTracker

ROOT = Path(__file__).parent.parent

RULES = """
component: c
rules:
  - name: ready
    match: {message: Status, fields: {ready: "False"}}
    object: {kind: Node, name: "{node}"}
    type: Warning
    reason: NotReady
    message: "{node} not ready: {why}"
  - name: phase
    match: {message: Status, fields: {phase: {exists: true}}}
    object: {kind: Node, name: "{node}"}
    transition: {state: "{phase}", first: emit}
    cases:
      - when: {to: Failed}
        type: Warning
        reason: NodeFailed
      - when: {from: unknown}
        emit: false
    type: Normal
    reason: PhaseChanged
    message: "{from} -> {to}"
"""


def processor() -> Processor:
    return Processor(compile_rules(parse_rules(RULES, "rules.yaml")), TransitionTracker())


def explain(proc: Processor, line: str, number: int = 1):  # type: ignore[no-untyped-def]
    return explain_line(proc, line.encode(), number, year=2026, max_line_bytes=1000)


def test_each_rule_tried_names_its_first_failed_condition() -> None:
    traced = explain(processor(), "level=info msg=Status node=n1 ready=True phase=Running")
    assert traced.record is not None and traced.record.format == "logfmt"
    assert traced.trace is not None
    first, second = traced.trace.tried
    assert (first.rule, first.failed, first.wants, first.seen) == (
        "ready",
        "fields.ready",
        "= False",
        "True",
    )
    assert (second.rule, second.failed) == ("phase", None)


def test_an_absent_field_is_seen_as_none() -> None:
    traced = explain(processor(), "level=info msg=Status node=n1")
    assert traced.trace is not None
    assert [(t.failed, t.seen) for t in traced.trace.tried] == [
        ("fields.ready", None),
        ("fields.phase", None),
    ]
    assert traced.outcome is None


def test_a_missing_field_is_named() -> None:
    traced = explain(processor(), "level=info msg=Status node=n1 ready=False")
    assert traced.outcome == RuleMiss("ready", "why")


def test_the_transition_state_before_and_after_and_the_case_that_chose() -> None:
    proc = processor()
    first = explain(proc, "level=info msg=Status node=n1 phase=Running")
    assert first.trace is not None
    assert (first.trace.before, first.trace.after, first.trace.case) == (None, "Running", 1)
    assert first.trace.emit is False
    assert type(first.outcome) is Unchanged
    second = explain(proc, "level=info msg=Status node=n1 phase=Failed", 2)
    assert second.trace is not None
    assert (second.trace.before, second.trace.after, second.trace.case) == (
        "Running",
        "Failed",
        0,
    )
    assert second.trace.key == ("phase", "Node", "", "n1", "")
    assert getattr(second.outcome, "reason", None) == "NodeFailed"


def test_the_pre_filter_skip_is_reported() -> None:
    traced = explain(processor(), "level=info msg=Other node=n1")
    assert traced.skipped and traced.record is None


def test_explain_agrees_with_replay_on_the_example(capsys: pytest.CaptureFixture[str]) -> None:
    """Every Event `replay` writes is one `explain` says was written, on the same line."""
    log = ROOT / "examples/quota-autoscaler.log"
    rules = ROOT / "examples/quota-autoscaler.rules.yaml"
    assert main(["explain", str(log), "--rules", str(rules), "-o", "json"]) == 0
    traces = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    with log.open("rb") as lines:
        assert len(traces) == sum(1 for _ in lines)
    explained = [(t["line"], t["write"], t["event"]["count"]) for t in traces if "event" in t]
    assert main(["replay", str(log), "--rules", str(rules), "-o", "writes"]) == 0
    writes = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert explained == [(w["line"], w["write"], w["count"]) for w in writes]
    verdicts = {t["verdict"] for t in traces}
    assert {"skipped", "event", "unchanged"} <= verdicts


def test_explain_text_says_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    log = tmp_path / "log"
    log.write_text(
        "level=info msg=Status node=n1 ready=True phase=Running\n"
        "level=info msg=Status node=n1 phase=Failed\n"
    )
    assert main(["explain", str(log), "--rules", str(rules)]) == 0
    out = capsys.readouterr().out
    assert "rule ready: fields.ready wants = False; the line has True" in out
    assert "transition phase/Node//n1/: (nothing yet) -> Running" in out
    assert "case cases[1] says emit: false: no Event" in out
    assert "event (by cases[0]): Warning NodeFailed: Running -> Failed" in out
    assert "create: default/n1." in out


def test_what_a_line_did_not_give_is_said() -> None:
    traced = explain(processor(), '{"msg": "Status", "node": "n1", "ready": "False", "why": "x"}')
    assert traced.record is not None and traced.record.missing == ("time", "level")
    assert to_json(traced, None)["record"]["missing"] == ["time", "level"]
    assert "not in the line: time, level" in format_text(traced, None)
    complete = explain(processor(), "level=info ts=1700000000 msg=Status node=n1 ready=True")
    assert complete.record is not None and complete.record.missing == ()
    assert "not in the line" not in format_text(complete, None)
