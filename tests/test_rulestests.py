"""`event-sidecar test`: the shipped examples' tests pass; a failing test fails readably."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.cli import main

ROOT = Path(__file__).parent.parent
SHIPPED = sorted((ROOT / "examples").glob("*.tests.yaml"))


def test_examples_ship_tests() -> None:
    assert SHIPPED


@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: path.name)
def test_shipped_rule_tests_pass(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", str(path)]) == 0, capsys.readouterr().out
    assert " 0 failed" in capsys.readouterr().out


LINE = (
    '{"level":"error","ts":"2026-11-20T09:10:00Z","msg":"Failed to update ResourceQuota",'
    '"error":"forbidden","controllerGroup":"autoscaling.example.com",'
    '"controllerKind":"ResourceQuotaAutoscaler",'
    '"ResourceQuotaAutoscaler":{"name":"team-b","namespace":"team-b"}}'
)


def write_tests(tmp_path: Path, body: str) -> Path:
    tests = tmp_path / "my.tests.yaml"
    rules = (ROOT / "examples/quota-autoscaler.rules.yaml").resolve()
    tests.write_text(f"rules: {rules}\ntests:\n{body}")
    return tests


def test_a_failing_test_exits_1_with_a_readable_diff(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tests = write_tests(
        tmp_path,
        f"""
  - name: wrong expectations
    input: |
      {LINE}
      {LINE}
    events:
      - {{type: Warning, reason: UpdateFailed, count: 3}}
    counters:
      created: 2
      'event_sidecar_rule_matches_total{{rule="update-failed"}}': 2
""",
    )
    assert main(["test", str(tests)]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "wrong expectations" in out
    assert '-- type: "Warning", reason: "UpdateFailed", count: 3' in out
    assert '+- type: "Warning", reason: "UpdateFailed", count: 2' in out
    assert "counter created: expected 2, got 1" in out
    assert "rule_matches_total" not in out  # that one holds: 2 matches
    assert "0 passed, 1 failed" in out


def test_an_unexpected_event_shows_in_full(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tests = write_tests(tmp_path, f"  - name: none expected\n    input: '{LINE}'\n    events: []\n")
    assert main(["test", str(tests)]) == 1
    out = capsys.readouterr().out
    assert '+- type: "Warning", reason: "UpdateFailed", object: ' in out
    assert '"ResourceQuotaAutoscaler/team-b", namespace: "team-b"' in out


def test_an_invalid_tests_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tests = write_tests(tmp_path, "  - name: x\n    input: a\n    input_file: b\n    colour: 1\n")
    assert main(["test", str(tests)]) == 2
    err = capsys.readouterr().err
    assert "tests.0.colour: unknown key 'colour'; allowed here: name, input, input_file" in err
    assert "Extra inputs" not in err


def test_a_test_needs_exactly_one_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tests = write_tests(tmp_path, "  - name: x\n    input: a\n    input_file: b\n")
    assert main(["test", str(tests)]) == 2
    assert "exactly one of input and input_file" in capsys.readouterr().err
