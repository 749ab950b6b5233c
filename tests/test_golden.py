"""Golden tests, mtail-style: every folder under tests/golden/ is one case.

A case holds:

- `rules.yaml`: the rules file;
- `input.log`: the log, replayed as `event-sidecar replay` would;
- `expected.jsonl`: the Events as `replay -o json` prints them (one body per line, in creation
  order, final state after patches);
- `summary.json`: the counts that do not depend on the pre-filter's choice of literals;
- `settings.yaml` (optional): `ReplaySettings` fields to override (`max_line_bytes`, `component`,
  `correlation: {...}`, `retry: {...}`).

Each case is replayed whole and in small chunks (so partial lines and the framer's long-line
handling are exercised) and must give the same Events either way.

Regenerate with `UPDATE_GOLDEN=1 pytest tests/test_golden.py`, then read every changed line of the
diff before committing it: a golden file that records a bug is worse than none.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from prometheus_client import CollectorRegistry

from sidecar.core.correlate import CorrelatorSettings
from sidecar.core.events.output import format_json_lines
from sidecar.core.rules import load_rules
from sidecar.model import RetrySettings
from sidecar.offline.replay import ReplayResult, ReplaySettings, replay
from sidecar.runtime.metrics import Metrics
from sidecar.runtime.sinks import MemorySink

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
BASE_SETTINGS = ReplaySettings(host="golden-host", year=2024)
#: How the log is cut into the chunks `replay` reads: whole, and in pieces that split lines.
CHUNKINGS = {"whole": 0, "chunks-61": 61, "chunks-1": 1}


def _cases() -> list[Any]:
    return [
        pytest.param(folder, id=folder.name)
        for folder in sorted(path for path in GOLDEN.iterdir() if path.is_dir())
    ]


def _settings(folder: Path) -> ReplaySettings:
    path = folder / "settings.yaml"
    if not path.is_file():
        return BASE_SETTINGS
    overrides: dict[str, Any] = yaml.safe_load(path.read_text()) or {}
    if "correlation" in overrides:
        overrides["correlation"] = CorrelatorSettings(**overrides["correlation"])
    if "retry" in overrides:
        overrides["retry"] = RetrySettings(**overrides["retry"])
    return dataclasses.replace(BASE_SETTINGS, **overrides)


def _chunks(data: bytes, size: int) -> list[bytes]:
    if size == 0:
        return [data]
    return [data[start : start + size] for start in range(0, len(data), size)]


def run_case(folder: Path, chunk_size: int = 0) -> tuple[str, str]:
    """Replay one case; return (events as JSON lines, summary as pretty JSON)."""
    rules = load_rules(folder / "rules.yaml")
    sink = MemorySink()
    result = replay(
        _chunks((folder / "input.log").read_bytes(), chunk_size),
        rules,
        sink,
        Metrics(CollectorRegistry()),
        settings=_settings(folder),
    )
    return format_json_lines(sink.events.values()), _summary(result)


def _summary(result: ReplayResult) -> str:
    counts = result.counts
    summary = {
        "lines_read": counts.lines,
        "too_long": counts.too_long,
        "matched": counts.matches.total(),
        "rule_misses": counts.misses.total(),
        "unchanged": counts.unchanged.total(),
        "specs": counts.events,
        "outcomes": dict(sorted(result.outcomes.items())),
    }
    return orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode() + "\n"


def _pretty(jsonl: str) -> list[str]:
    """One field per line, so that a diff points at the field that differs."""
    lines: list[str] = []
    for number, line in enumerate(jsonl.splitlines(), start=1):
        try:
            body = orjson.loads(line)
        except orjson.JSONDecodeError:
            lines.append(f"#{number} (not JSON): {line}\n")
            continue
        lines.append(f"# event {number}\n")
        lines.extend(
            text + "\n"
            for text in orjson.dumps(body, option=orjson.OPT_INDENT_2).decode().split("\n")
        )
    return lines


def _diff(expected: str, actual: str, name: str, pretty: bool) -> str:
    old = _pretty(expected) if pretty else expected.splitlines(keepends=True)
    new = _pretty(actual) if pretty else actual.splitlines(keepends=True)
    return "".join(difflib.unified_diff(old, new, f"{name} (expected)", f"{name} (actual)"))


@pytest.mark.parametrize("chunking", list(CHUNKINGS))
@pytest.mark.parametrize("folder", _cases())
def test_golden(folder: Path, chunking: str) -> None:
    events, summary = run_case(folder, CHUNKINGS[chunking])
    expected_path = folder / "expected.jsonl"
    summary_path = folder / "summary.json"
    if UPDATE:
        if chunking != "whole":
            pytest.skip("UPDATE_GOLDEN writes from the whole-file replay only")
        expected_path.write_text(events, encoding="utf-8")
        summary_path.write_text(summary, encoding="utf-8")
        return
    if not expected_path.is_file() or not summary_path.is_file():
        pytest.fail(f"{folder.name}: no expected files yet; write them with UPDATE_GOLDEN=1")
    expected = expected_path.read_text(encoding="utf-8")
    expected_summary = summary_path.read_text(encoding="utf-8")
    problems = []
    if events != expected:
        problems.append(_diff(expected, events, f"{folder.name}/expected.jsonl", pretty=True))
    if summary != expected_summary:
        problems.append(_diff(expected_summary, summary, f"{folder.name}/summary.json", False))
    if problems:
        pytest.fail(
            "replay differs from the golden files (UPDATE_GOLDEN=1 rewrites them; check the "
            "diff by hand first):\n" + "\n".join(problems),
            pytrace=False,
        )


def test_every_case_is_complete() -> None:
    """A case folder missing a file would silently test less than it seems to."""
    for param in _cases():
        folder: Path = param.values[0]
        for name in ("rules.yaml", "input.log", "expected.jsonl", "summary.json"):
            assert (folder / name).is_file(), f"{folder.name} has no {name}"
        known = {
            "rules.yaml",
            "input.log",
            "expected.jsonl",
            "summary.json",
            "settings.yaml",
        }
        unknown = {path.name for path in folder.iterdir()} - known
        assert not unknown, f"{folder.name} has files the runner ignores: {sorted(unknown)}"


def test_expected_files_are_what_replay_prints() -> None:
    """Every expected line is an Event body as the API returns it, with the fixed host."""
    for param in _cases():
        folder: Path = param.values[0]
        for line in (folder / "expected.jsonl").read_text(encoding="utf-8").splitlines():
            body = orjson.loads(line)
            assert body["apiVersion"] == "v1"
            assert body["kind"] == "Event"
            assert body["source"]["host"] == "golden-host"
            assert body["reportingInstance"] == "golden-host"
            assert len(body["message"].encode()) <= 1024
            assert orjson.dumps(body).decode() == line, "not in replay -o json's compact form"


# --- replay-level bugs, found while writing the cases above --------------------------------------

ANY_MESSAGE_RULES = """
component: probe
rules:
  - name: any
    match: {message: {regex: "."}}
    object: {kind: Node, name: n1}
    reason: Seen
"""


def _replay_text(tmp_path: Path, log: bytes) -> str:
    rules_path = tmp_path / "rules.yaml"
    rules_path.write_text(ANY_MESSAGE_RULES)
    sink = MemorySink()
    replay(
        [log], load_rules(rules_path), sink, Metrics(CollectorRegistry()), settings=BASE_SETTINGS
    )
    return format_json_lines(sink.events.values())


@pytest.mark.parametrize("stamp", ['"inf"', '"nan"', "1e300", '"-1e300"'])
def test_replay_survives_absurd_timestamps(tmp_path: Path, stamp: str) -> None:
    log = b'{"ts":1704982863,"msg":"first"}\n' + f'{{"ts":{stamp},"msg":"absurd time"}}\n'.encode()
    text = _replay_text(tmp_path, log)
    # The absurd time is unreadable, so the Event keeps the log's clock.
    assert '"message":"absurd time"' in text
    assert '"lastTimestamp":"2024-01-11T14:21:03Z"' in text


def test_replay_survives_an_escaped_lone_surrogate(tmp_path: Path) -> None:
    text = _replay_text(tmp_path, b'I0111 14:21:03.000000       1 x.go:1] "bad \\ud800"\n')
    assert '"message":"bad \ufffd"' in text
