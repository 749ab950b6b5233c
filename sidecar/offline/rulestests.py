"""`event-sidecar test`: rule tests kept beside the rules, in the spirit of `promtool test rules`.

A tests file names a rules file and lists tests: log lines in, the Events and counters expected
out. Each test replays its lines through `sidecar.offline.replay` (the production pipeline,
correlator and an in-memory sink), so a test passes exactly when `replay` would print those Events.

```yaml
rules: quota-autoscaler.rules.yaml     # relative to this file
tests:
  - name: a quota raised once is one Event
    year: 2026                         # klog's year, optional
    input: |                           # or input_file: quota-autoscaler.log
      {"level":"info","ts":"2026-11-20T09:04:23Z","msg":"Quota evaluated", ...}
    events:                            # every Event, in order of creation; only the keys
      - type: Normal                   #   given are compared
        reason: QuotaExpanded
        object: ResourceQuotaAutoscaler/team-a
        namespace: team-a
        message: "cpu 1 -> 2"
        count: 1
    counters:                          # replay's summary fields, or Prometheus samples
      matched: 1
      'event_sidecar_rule_matches_total{rule="quota-expanded"}': 1
```
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import ErrorDetails

from sidecar.core.events.corev1 import Event
from sidecar.core.rules import RulesError, RuleSet, load_rules
from sidecar.core.validation import error_message, error_path
from sidecar.offline.replay import ReplayResult, ReplaySettings, replay
from sidecar.runtime.metrics import Metrics
from sidecar.runtime.sinks import MemorySink


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ExpectedEvent(_Strict):
    """An Event a test expects; a key left out is not compared."""

    type: str | None = None
    reason: str | None = None
    #: `Kind/name`, as the involved object (`ResourceQuotaAutoscaler/team-a`).
    object: str | None = None
    namespace: str | None = None
    message: str | None = None
    count: int | None = None


class RuleTest(_Strict):
    name: str
    input: str | None = None
    input_file: str | None = None
    year: int | None = None
    #: None: not compared; [] expects no Event at all.
    events: list[ExpectedEvent] | None = None
    counters: dict[str, float] = Field(default_factory=dict)
    #: `replay --api-version`: group -> version for `object: auto`.
    api_versions: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_input(self) -> RuleTest:
        if (self.input is None) == (self.input_file is None):
            raise ValueError("give the log lines as exactly one of input and input_file")
        return self


class TestsFile(_Strict):
    rules: str
    tests: list[RuleTest] = Field(min_length=1)


class TestsFileError(Exception):
    """A tests file (or its rules) that cannot be run; the message says every problem."""


@dataclass(frozen=True, slots=True)
class TestResult:
    name: str
    #: Empty when the test passed; else readable differences (unified diffs and counter lines).
    diff: list[str]

    @property
    def passed(self) -> bool:
        return not self.diff


def load_tests(path: Path) -> tuple[TestsFile, RuleSet]:
    """The tests file and its compiled rules; raise `TestsFileError` naming every problem."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise TestsFileError(f"{path}: cannot read: {error}") from error
    try:
        parsed = TestsFile.model_validate(data)
    except ValidationError as error:
        problems = [
            f"{path}: {'.'.join(error_path(detail['loc'])) or '(top)'}: {_words(detail)}"
            for detail in error.errors()
        ]
        raise TestsFileError("\n".join(problems)) from error
    try:
        rules = load_rules(path.parent / parsed.rules)
    except RulesError as error:
        raise TestsFileError(str(error)) from error
    return parsed, rules


def _words(detail: ErrorDetails) -> str:
    """The error in the tests file's words: an unknown key names the keys allowed there."""
    if detail["type"] != "extra_forbidden":
        return error_message(detail)
    steps = error_path(detail["loc"])
    model: type[BaseModel] = TestsFile
    if len(steps) >= 3 and steps[0] == "tests":
        model = ExpectedEvent if len(steps) >= 5 and steps[2] == "events" else RuleTest
    allowed = ", ".join(model.model_fields)
    return f"unknown key {steps[-1]!r}; allowed here: {allowed}"


def run_tests(path: Path) -> list[TestResult]:
    """Run every test of the tests file at `path`."""
    parsed, rules = load_tests(path)
    return [run_test(test, rules, path.parent) for test in parsed.tests]


def run_test(test: RuleTest, rules: RuleSet, folder: Path) -> TestResult:
    if test.input_file is not None:
        try:
            data = (folder / test.input_file).read_bytes()
        except OSError as error:
            raise TestsFileError(f"test {test.name}: cannot read input_file: {error}") from error
    else:
        data = (test.input or "").encode()
    registry = CollectorRegistry()
    sink = MemorySink(test.api_versions)
    result = replay([data], rules, sink, Metrics(registry), settings=ReplaySettings(year=test.year))
    diff: list[str] = []
    if test.events is not None:
        diff += _events_diff(test.events, list(sink.events.values()))
    if test.counters:
        diff += _counters_diff(test.counters, _counters(result, registry))
    return TestResult(test.name, diff)


def _describe(event: Event) -> dict[str, Any]:
    return {
        "type": event.type,
        "reason": event.reason,
        "object": f"{event.involved.kind}/{event.involved.name}",
        "namespace": event.namespace,
        "message": event.message,
        "count": event.count,
    }


def _line(fields: dict[str, Any]) -> str:
    return "- " + ", ".join(
        f"{key}: {orjson.dumps(value).decode()}" for key, value in fields.items()
    )


def _events_diff(expected: list[ExpectedEvent], got: list[Event]) -> list[str]:
    """A unified diff of the Events, each shown with the keys its expected counterpart gives."""
    want_lines = [_line(event.model_dump(exclude_none=True)) for event in expected]
    got_lines = []
    for index, event in enumerate(got):
        described = _describe(event)
        if index < len(expected):
            keys = expected[index].model_dump(exclude_none=True)
            described = {key: described[key] for key in keys} or described
        got_lines.append(_line(described))
    if want_lines == got_lines:
        return []
    return [
        "events differ (- expected, + got):",
        *(
            "  " + line
            for line in difflib.unified_diff(
                want_lines, got_lines, "expected", "got", lineterm="", n=2
            )
        ),
    ]


_SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


def _sample_key(name: str, labels: dict[str, str]) -> str:
    if not labels:
        return name
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def _normalise(key: str) -> str:
    """A counter's name as the user wrote it, with its labels in a canonical order."""
    found = _SAMPLE.fullmatch(key.strip())
    if found is None or found[2] is None:
        return key.strip()
    labels = dict(_LABEL.findall(found[2]))
    return _sample_key(found[1], labels)


def _counters(result: ReplayResult, registry: CollectorRegistry) -> dict[str, float]:
    """The summary `replay --summary json` prints (nested counts as `dropped.spam_filter`) and
    every Prometheus sample."""
    values: dict[str, float] = {}
    for key, value in result.summary().items():
        if isinstance(value, dict):
            for inner, number in value.items():
                values[f"{key}.{inner}"] = number
        else:
            values[key] = value
    for family in registry.collect():
        for sample in family.samples:
            values[_sample_key(sample.name, dict(sample.labels))] = sample.value
    return values


def _counters_diff(expected: dict[str, float], got: dict[str, float]) -> list[str]:
    lines = []
    for key, want in expected.items():
        normal = _normalise(key)
        have = got.get(normal, 0.0)
        if have != want:
            lines.append(f"counter {key}: expected {want:g}, got {have:g}")
    return lines
