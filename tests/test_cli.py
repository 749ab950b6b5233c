"""`event-sidecar replay` end to end on the embedded example, as `make demo` runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sidecar.cli import main

ROOT = Path(__file__).parent.parent
LOG = ROOT / "examples/quota-autoscaler.log"
RULES = ROOT / "examples/quota-autoscaler.rules.yaml"


def replay_json(capsys: pytest.CaptureFixture[str], *extra: str) -> list[dict[str, object]]:
    assert (
        main(["replay", str(LOG), "--rules", str(RULES), "--host", "h-0", "-o", "json", *extra])
        == 0
    )
    return [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_example_replays_into_the_expected_events(capsys: pytest.CaptureFixture[str]) -> None:
    events = replay_json(capsys)
    reasons = [(e["reason"], e["count"]) for e in events]
    assert reasons.count(("QuotaExpanded", 1)) == 5
    assert ("UpdateFailed", 7) in reasons
    assert ("ReconcileError", 7) in reasons
    assert ("LeaderElection", 1) in reasons
    messages = {e["message"] for e in events if e["reason"] == "QuotaExpanded"}
    assert "扩容成功 资源类型: cpu 1 -> 2" in messages
    assert "扩容成功 资源类型: memory 2Gi -> 4Gi" in messages
    lease = next(e for e in events if e["reason"] == "LeaderElection")
    assert lease["involvedObject"] == {
        "kind": "Lease",
        "name": "quota-autoscaler-lock",
        "namespace": "quota-system",
        "apiVersion": "coordination.k8s.io/v1",
    }
    assert lease["source"] == {"component": "quota-autoscaler", "host": "h-0"}


def test_replay_is_deterministic(capsys: pytest.CaptureFixture[str]) -> None:
    assert replay_json(capsys) == replay_json(capsys)


def test_stdin_and_file_agree(capsys: pytest.CaptureFixture[str]) -> None:
    from_file = replay_json(capsys)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sidecar",
            "replay",
            "-",
            "--rules",
            str(RULES),
            "--host",
            "h-0",
            "-o",
            "json",
        ],
        input=LOG.read_bytes(),
        capture_output=True,
        check=True,
    )
    assert [orjson.loads(line) for line in done.stdout.splitlines()] == from_file
    assert b"lines read: 629" in done.stderr


def test_table_summary_and_metrics(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(LOG), "--rules", str(RULES), "--host", "h-0", "--metrics"]) == 0
    captured = capsys.readouterr()
    header, *rows = captured.out.split("# HELP", 1)[0].strip().splitlines()
    assert header.split() == [
        "LAST",
        "SEEN",
        "TYPE",
        "REASON",
        "OBJECT",
        "SUBOBJECT",
        "SOURCE",
        "MESSAGE",
        "FIRST",
        "SEEN",
        "COUNT",
        "NAME",
    ]
    assert any("resourcequotaautoscaler/team-b" in row and "UpdateFailed" in row for row in rows)
    families = {
        f.name: f
        for f in text_string_to_metric_families(captured.out.split("\n", len(rows) + 1)[-1])
    }
    emitted = {
        (s.labels["reason"], s.labels["type"], s.labels["write"]): s.value
        for s in families["event_sidecar_events_emitted"].samples
        if s.name.endswith("_total")
    }
    assert emitted[("UpdateFailed", "Warning", "create")] == 1
    assert emitted[("UpdateFailed", "Warning", "patch")] == 6
    assert emitted[("QuotaExpanded", "Normal", "create")] == 5
    assert "lines read: 629" in captured.err
    assert "events: 28 (13 created, 15 patched)" in captured.err


def test_spam_options_reach_the_correlator(capsys: pytest.CaptureFixture[str]) -> None:
    events = replay_json(capsys, "--spam-burst", "1", "--spam-refill-seconds", "1e9")
    # One token per object and type, never refilled: the first Event of each pair only.
    assert sorted((e["involvedObject"]["name"], e["type"]) for e in events) == [  # type: ignore[index]
        ("quota-autoscaler-lock", "Normal"),
        ("team-a", "Normal"),
        ("team-a", "Warning"),  # QuotaAtLimit, chosen by the phase-changed rule's cases
        ("team-b", "Warning"),
        ("team-c", "Normal"),
    ]


def test_missing_log_file_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "/nonexistent.log", "--rules", str(RULES)]) == 1
    assert "error: cannot read /nonexistent.log" in capsys.readouterr().err


def test_bad_rules_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "r.yaml"
    bad.write_text("rules: []\n")
    assert main(["replay", str(LOG), "--rules", str(bad)]) == 2
    assert "the file has no rules" in capsys.readouterr().err


@pytest.mark.parametrize(
    "option",
    ["--spam-refill-seconds=0", "--spam-burst=0", "--aggregate-window=-1", "--max-line-bytes=0"],
)
def test_nonsensical_numbers_are_usage_errors(
    option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["replay", str(LOG), "--rules", str(RULES), option])
    assert caught.value.code == 2
    assert option.split("=", maxsplit=1)[0] in capsys.readouterr().err


def run_with_environment(**environment: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "sidecar",
            "run",
            "--rules",
            str(RULES),
            "--file",
            "/nonexistent/x.log",
            "--dry-run",
        ],
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("variable", "value", "complaint"),
    [
        ("SIDECAR_POLL_INTERVAL", "fast", "--poll-interval"),
        ("SIDECAR_QUEUE_SIZE", "0", "--queue-size"),
        ("SIDECAR_START", "sometimes", "SIDECAR_START='sometimes' is not one of"),
        ("SIDECAR_DRY_RUN", "maybe", "SIDECAR_DRY_RUN='maybe' is not a boolean"),
    ],
)
def test_bad_environment_is_a_usage_error_of_run_only(
    variable: str, value: str, complaint: str
) -> None:
    done = run_with_environment(**{variable: value})
    assert done.returncode == 2, done.stderr
    assert complaint in done.stderr
    # Other commands are not affected by run's variables.
    check = subprocess.run(
        [sys.executable, "-m", "sidecar", "check", str(RULES)],
        env={**os.environ, variable: value},
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr


def test_since_and_until_bound_the_events_by_the_lines_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    window = ("--since", "2026-11-20T09:10:00Z", "--until", "2026-11-20T09:20:00Z")
    events = replay_json(capsys, *window)
    assert events
    for event in events:
        assert "2026-11-20T09:10:00Z" <= str(event["firstTimestamp"]) < "2026-11-20T09:20:00Z"
    everything = replay_json(capsys)
    assert len(events) < len(everything)


def test_a_relative_since_is_before_now() -> None:
    from sidecar.cli.options import parse_moment  # noqa: PLC0415

    assert parse_moment("-1h", now=10_000.0) == 6400.0
    assert parse_moment("30m", now=10_000.0) == 8200.0
    assert parse_moment("2026-11-20T09:00:00Z") == parse_moment("2026-11-20T09:00:00")


def test_a_bad_since_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["replay", str(LOG), "--rules", str(RULES), "--since", "yesterday"])
    assert exited.value.code == 2
    assert "neither RFC 3339" in capsys.readouterr().err


def api_versions(events: list[dict[str, object]]) -> dict[str, Any]:
    involved: list[dict[str, Any]] = [e["involvedObject"] for e in events]  # type: ignore[misc]
    return {o["kind"]: o.get("apiVersion") for o in involved}


def test_api_version_completes_the_group_object_auto_knows(
    capsys: pytest.CaptureFixture[str],
) -> None:
    kinds = api_versions(replay_json(capsys, "--api-version", "autoscaling.example.com/v1"))
    assert kinds["ResourceQuotaAutoscaler"] == "autoscaling.example.com/v1"
    assert kinds["Lease"] == "coordination.k8s.io/v1"
    without = api_versions(replay_json(capsys))
    assert without["ResourceQuotaAutoscaler"] is None


def test_writes_lists_every_create_and_patch_with_its_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["replay", str(LOG), "--rules", str(RULES), "-o", "writes"]) == 0
    captured = capsys.readouterr()
    writes = [orjson.loads(line) for line in captured.out.splitlines()]
    assert "13 created, 15 patched" in captured.err
    assert [w["write"] for w in writes].count("create") == 13
    assert len(writes) == 28
    lines = LOG.read_text().splitlines()
    for write in writes:
        if write["reason"] == "UpdateFailed":
            assert "Failed to update ResourceQuota" in lines[int(write["line"]) - 1]
    counts = [w["count"] for w in writes if w["reason"] == "UpdateFailed"]
    assert counts == list(range(1, 8))


def test_replay_in_events_k8s_io_v1_mode_writes_what_run_would(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Series instead of counts: the create, the count-2 PATCH, the rest counted in memory and
    written by the heartbeat (on the log's clock) or at the end; `-o writes` shows the bodies."""
    args = ["replay", str(LOG), "--rules", str(RULES), "--host", "h-0"]
    assert main([*args, "--events-api", "events.k8s.io/v1", "-o", "writes"]) == 0
    captured = capsys.readouterr()
    assert "events: 28 (10 created, 5 patched, 13 counted in series)" in captured.err
    writes = [orjson.loads(line) for line in captured.out.splitlines()]
    assert all(w["body"]["apiVersion"] == "events.k8s.io/v1" for w in writes)
    failed = [w for w in writes if w["body"]["reason"] == "UpdateFailed"]
    # Created, PATCHed to 2 on the second occurrence, then its final count of 7 after a quiet
    # heartbeat period (6 minutes of the log's clock) or at the end.
    assert [(w["write"], (w["body"].get("series") or {}).get("count")) for w in failed] == [
        ("create", None),
        ("patch", 2),
        ("patch", 7),
    ]
    body = failed[-1]["body"]
    assert body["note"].startswith('resourcequotas "team-b" is forbidden')
    assert body["reportingInstance"] == "quota-autoscaler-h-0"
    assert body["regarding"]["name"] == "team-b"
    for legacy in ("count", "message", "involvedObject", "source"):
        assert legacy not in body
    lines = LOG.read_text().splitlines()
    assert "Failed to update ResourceQuota" in lines[failed[0]["line"] - 1]
    # -o json: each Event as stored at the end, its series with the final count.
    assert main([*args, "--events-api", "events.k8s.io/v1", "-o", "json"]) == 0
    stored = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(stored) == 10
    assert sum((e.get("series") or {"count": 1})["count"] for e in stored) == 28
    (update_failed,) = [e for e in stored if e["reason"] == "UpdateFailed"]
    assert update_failed["series"]["count"] == 7
    # The table shows the series' count, as kubectl does.
    assert main([*args, "--events-api", "events.k8s.io/v1"]) == 0
    table = capsys.readouterr().out.splitlines()
    (row,) = [row for row in table if "UpdateFailed" in row]
    assert row.split()[-2] == "7"
    # Without a cluster, auto has nothing to ask: core/v1, and it says so.
    assert main([*args, "--events-api", "auto", "-o", "json"]) == 0
    captured = capsys.readouterr()
    assert "writing Events to v1: no cluster" in captured.err
    assert all(orjson.loads(line)["apiVersion"] == "v1" for line in captured.out.splitlines())


def test_lines_without_a_time_or_with_an_unknown_level_are_counted_not_silent(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A JSON line whose time key is not a known one, and one whose level is a number no logger
    agrees on, decode (their rules still match) but are counted in the summary and metrics."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "component: c\nrules:\n  - name: seen\n    match: {message: Observed}\n"
        '    object: {apiVersion: v1, kind: ConfigMap, namespace: ns, name: "{name}"}\n'
        "    reason: Observed\n    message: observed {name}\n"
    )
    log = tmp_path / "in.log"
    log.write_bytes(
        b'{"level":"info","ts":1700000000,"msg":"Observed","name":"a"}\n'
        b'{"level":"info","when":"2026-01-01T00:00:00Z","msg":"Observed","name":"b"}\n'
        b'{"level":3,"ts":1700000001,"msg":"Observed","name":"c"}\n'
    )
    assert main(["replay", str(log), "--rules", str(rules), "--metrics", "-o", "none"]) == 0
    captured = capsys.readouterr()
    assert "incomplete: 2 (1 time, 1 unknown_level)" in captured.err
    samples = {
        (s.name, s.labels.get("why")): s.value
        for family in text_string_to_metric_families(captured.out)
        for s in family.samples
        if s.name == "event_sidecar_lines_incomplete_total"
    }
    assert samples == {
        ("event_sidecar_lines_incomplete_total", "time"): 1,
        ("event_sidecar_lines_incomplete_total", "unknown_level"): 1,
    }


def test_every_option_of_every_command_is_a_row_of_the_tables() -> None:
    """Each flag of each command comes from one row of `sidecar.cli.table*` (declared once)."""
    import argparse  # noqa: PLC0415

    from sidecar.cli import build_parser  # noqa: PLC0415
    from sidecar.cli.table import RUN_OPTIONS  # noqa: PLC0415
    from sidecar.cli.table_inject import (  # noqa: PLC0415
        INJECT_SOURCE_OPTIONS,
        INJECTION_OPTIONS,
        WEBHOOK_OPTIONS,
    )
    from sidecar.cli.table_offline import (  # noqa: PLC0415
        CHECK_OPTIONS,
        EXPLAIN_OPTIONS,
        REPLAY_OPTIONS,
        SUGGEST_OPTIONS,
    )

    tables = {
        "run": RUN_OPTIONS,
        "check": CHECK_OPTIONS,
        "replay": REPLAY_OPTIONS,
        "explain": EXPLAIN_OPTIONS,
        "test": (),
        "suggest": SUGGEST_OPTIONS,
        "webhook": (*WEBHOOK_OPTIONS, *INJECTION_OPTIONS),
        "inject": (*INJECT_SOURCE_OPTIONS, *INJECTION_OPTIONS),
    }
    (commands,) = [
        action
        for action in build_parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    ]
    assert set(commands.choices) == set(tables)
    for name, parser in commands.choices.items():
        flags = {
            flag
            for action in parser._actions
            for flag in action.option_strings
            if flag not in ("-h", "--help")
        }
        rows = {flag for row in tables[name] for flag in (row.flag, row.short) if flag}
        assert flags == rows, name
