"""Property tests of the rules engine: `Processor.process` and the byte pre-filter.

The pre-filter (`RuleSet.literals`, `sidecar.core.lines.scan.select_lines`) is an optimisation only:
running the same log with and without it must give the same Events.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from sidecar.core.lines.decode import decode
from sidecar.core.lines.records import LEVELS, Record
from sidecar.core.pipeline import LinePipeline, Processor, RuleMiss, Unchanged
from sidecar.core.rules import RuleSet, compile_rules, load_rules, parse_rules
from sidecar.core.rules.schema import RulesFile
from sidecar.core.transitions import TransitionTracker
from sidecar.model import EventSpec
from sidecar.runtime.metrics import Metrics

ROOT = Path(__file__).parent.parent
GOLDEN = Path(__file__).parent / "golden"
EXAMPLE_RULES = load_rules(ROOT / "examples" / "quota-autoscaler.rules.yaml")
GOLDEN_RULES = {path.parent.name: load_rules(path) for path in sorted(GOLDEN.glob("*/rules.yaml"))}
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _log_lines() -> list[bytes]:
    """Every golden input and the example log: all formats, garbage included."""
    lines: list[bytes] = []
    for path in [*sorted(GOLDEN.glob("*/input.log")), ROOT / "examples" / "quota-autoscaler.log"]:
        lines.extend(path.read_bytes().split(b"\n"))
    return lines


LOG_LINES = _log_lines()
MIXED_LOG = b"".join(line + b"\n" for line in LOG_LINES)


def _harvest() -> tuple[list[str], list[tuple[str, Any]]]:
    """Messages and scalar field values that really occur in the log, for rules that match."""
    messages: set[str] = set()
    values: set[tuple[str, Any]] = set()
    for line in LOG_LINES:
        decoded = decode(line, year=2024)
        if type(decoded) is not Record:
            continue
        messages.add(decoded.message)
        for key, value in decoded.fields.items():
            # Short values only: IDs and error texts would just repeat what messages exercise.
            if (
                value is None
                or type(value) in (int, float, bool)
                or (type(value) is str and len(value) <= 24)
            ):
                values.add((key, value))
    return sorted(messages), sorted(values, key=repr)[:: max(1, len(values) // 80)]


MESSAGES, FIELD_VALUES = _harvest()


def new_pipeline(rules: RuleSet, max_line_bytes: int = 4096) -> LinePipeline:
    return LinePipeline(
        Processor(rules, TransitionTracker()), year=2024, max_line_bytes=max_line_bytes
    )


def without_prefilter(rules: RuleSet) -> RuleSet:
    return dataclasses.replace(rules, literals=None)


def outcomes_of(rules: RuleSet, block: bytes) -> tuple[list[str], tuple[int, ...]]:
    """Specs (as reprs, so that a NaN time compares equal to itself) and the rule counters."""
    pipeline = new_pipeline(rules)
    specs = [repr(spec) for spec in pipeline.feed(block).specs]
    counts = pipeline.counts
    return specs, (
        counts.matches.total(),
        counts.misses.total(),
        counts.unchanged.total(),
        counts.events,
    )


# --- strategies ---------------------------------------------------------------------------------

FIELD_NAMES = [
    "resource",
    "hard",
    "phase",
    "error",
    "err",
    "lease",
    "name",
    "namespace",
    "controllerKind",
    "ResourceQuotaAutoscaler.name",
    "Workload.namespace",
    "configmap",
    "count",
    "status",
]
TEMPLATE_PARTS = [
    "{resource}",
    "{hard}",
    "{phase}",
    "{message}",
    "{msg}",
    "{level}",
    "{logger}",
    "{from}",
    "{to}",
    "{name}",
    "{ResourceQuotaAutoscaler.name}",
    "{pod.name}",
    "text ",
    "扩容成功 ",
    "{{literal}} ",
    "",
]
scalars = st.one_of(
    st.sampled_from([value for _, value in FIELD_VALUES] or ["x"]),
    st.sampled_from(MESSAGES or ["x"]),
    st.text(max_size=8),
    st.integers(-3, 3),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
)
conditions = st.one_of(
    scalars,
    st.lists(scalars, min_size=1, max_size=3),
    st.builds(lambda value: {"equals": value}, scalars),
    st.builds(lambda values: {"any": values}, st.lists(scalars, min_size=1, max_size=3)),
    st.builds(
        lambda pattern: {"regex": pattern},
        st.sampled_from(["^Q", "ed$", ".", "cpu|memory", "[0-9]+", "^$", "失败|成功"]),
    ),
    st.builds(lambda wanted: {"exists": wanted}, st.booleans()),
)
message_conditions = st.one_of(st.sampled_from(MESSAGES or ["x"]), conditions)
templates = st.lists(st.sampled_from(TEMPLATE_PARTS), max_size=4).map("".join)
levels = st.one_of(
    st.sampled_from(LEVELS), st.lists(st.sampled_from(LEVELS), min_size=1, max_size=3)
)
matches = st.fixed_dictionaries(
    {},
    optional={
        "message": message_conditions,
        "level": levels,
        "logger": conditions,
        "fields": st.dictionaries(st.sampled_from(FIELD_NAMES), conditions, max_size=3)
        # Pairs that occur together in the log, so that generated rules do match.
        | st.lists(st.sampled_from(FIELD_VALUES or [("x", "x")]), max_size=2).map(dict),
    },
).filter(lambda match: any(match.get(key) for key in ("message", "level", "logger", "fields")))
kinds = st.sampled_from(
    ["ResourceQuotaAutoscaler", "Pod", "Node", "Lease", "ConfigMap", "Workload"]
)
objects = st.one_of(
    st.just("auto"),
    st.builds(lambda kind, ref: {"kind": kind, "ref": ref}, kinds, st.sampled_from(FIELD_NAMES)),
    st.builds(lambda kind: {"kind": kind, "apiVersion": "example.com/v1"}, kinds),
    st.builds(
        lambda kind, name, namespace, path: {
            "kind": kind,
            "name": name,
            **({"namespace": namespace} if namespace is not None else {}),
            **({"fieldPath": path} if path is not None else {}),
        },
        kinds,
        templates,
        st.none() | templates,
        st.none() | templates,
    ),
)
transitions = st.none() | st.fixed_dictionaries(
    {"state": templates},
    optional={
        "key": templates,
        "first": st.sampled_from(["skip", "emit"]),
        "initial": st.text(max_size=6),
    },
)


@st.composite
def rule_sets(draw: st.DrawFn) -> RuleSet:
    rules = []
    for index in range(draw(st.integers(min_value=1, max_value=4))):
        rule: dict[str, Any] = {
            "name": f"rule-{index}",
            "match": draw(matches),
            "object": draw(objects),
            "type": draw(st.sampled_from(["Normal", "Warning"])),
            "reason": draw(st.sampled_from(["Reason", "QuotaExpanded", "R2"])),
            "message": draw(templates),
        }
        transition = draw(transitions)
        if transition is not None:
            rule["transition"] = transition
        rules.append(rule)
    return compile_rules(RulesFile.model_validate({"component": "generated", "rules": rules}))


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
ref_values = st.one_of(
    json_values,
    st.sampled_from(["team-a/team-a", "worker-1", "kube-system/lock", "", "/", "a/"]),
    st.fixed_dictionaries(
        {},
        optional={"name": json_values | st.sampled_from(["team-a", ""]), "namespace": json_values},
    ),
)
records = st.builds(
    Record,
    message=st.sampled_from(MESSAGES or ["x"]) | st.text(max_size=20),
    level=st.sampled_from(LEVELS),
    verbosity=st.integers(0, 5),
    time=st.none() | st.floats(min_value=0, max_value=4e9),
    logger=st.sampled_from(["", "controller.resourcequotaautoscaler", "setup"])
    | st.text(max_size=8),
    fields=st.fixed_dictionaries(
        {},
        optional={
            "controllerKind": st.sampled_from(["ResourceQuotaAutoscaler", "Node", ""])
            | json_values,
            "controllerGroup": st.sampled_from(["autoscaling.example.com", ""]) | json_values,
            "ResourceQuotaAutoscaler": ref_values,
            "Node": ref_values,
            "namespace": st.sampled_from(["team-a", ""]) | json_values,
            "name": st.sampled_from(["team-a", ""]) | json_values,
            "resource": st.sampled_from(["cpu", "memory"]) | json_values,
            "hard": st.sampled_from(["1", "2Gi"]) | json_values,
            "phase": st.sampled_from(["Stable", "Scaling"]) | json_values,
            "error": json_values,
            "lease": ref_values,
            "pod": ref_values,
        },
    ).flatmap(
        lambda known: st.dictionaries(st.text(max_size=6), json_values, max_size=2).map(
            lambda extra: {**extra, **known}
        )
    ),
)


# --- Processor.process --------------------------------------------------------------------------


def check_outcome(outcome: object, rules: RuleSet) -> None:
    assert outcome is None or type(outcome) in (EventSpec, RuleMiss, Unchanged)
    names = {rule.name for rule in rules.rules}
    if outcome is None:
        return
    assert outcome.rule in names  # type: ignore[attr-defined]
    if type(outcome) is EventSpec:
        assert outcome.type in ("Normal", "Warning")
        assert outcome.target.kind
        assert isinstance(outcome.target.name, str)
        assert outcome.target.name, "an Event needs an involved object name"
        assert isinstance(outcome.target.namespace, str)
        assert isinstance(outcome.message, str)
    elif type(outcome) is RuleMiss:
        assert isinstance(outcome.field, str)
        assert outcome.field


@PROPERTY
@given(st.lists(records, min_size=1, max_size=5))
def test_process_never_raises_with_the_example_rules(batch: list[Record]) -> None:
    processor = Processor(EXAMPLE_RULES, TransitionTracker())
    for record in batch * 2:  # twice: the second pass sees the transition state
        check_outcome(processor.process(record), EXAMPLE_RULES)


@PROPERTY
@given(rule_sets(), st.lists(records, min_size=1, max_size=4))
def test_process_never_raises_with_generated_rules(rules: RuleSet, batch: list[Record]) -> None:
    processor = Processor(rules, TransitionTracker())
    for record in batch * 2:
        check_outcome(processor.process(record), rules)


@PROPERTY
@given(st.sampled_from(sorted(GOLDEN_RULES)), st.lists(records, min_size=1, max_size=4))
def test_process_never_raises_with_the_golden_rules(case: str, batch: list[Record]) -> None:
    rules = GOLDEN_RULES[case]
    processor = Processor(rules, TransitionTracker())
    for record in batch * 2:
        check_outcome(processor.process(record), rules)


def test_process_example_rules_on_the_example_log() -> None:
    """Decoded lines of every format through the example rules: outcomes of every kind occur."""
    processor = Processor(EXAMPLE_RULES, TransitionTracker())
    seen: set[type] = set()
    for line in LOG_LINES:
        decoded = decode(line, year=2024)
        if type(decoded) is Record:
            outcome = processor.process(decoded)
            check_outcome(outcome, EXAMPLE_RULES)
            seen.add(type(outcome))
    assert seen >= {EventSpec, Unchanged, type(None)}


def test_a_rule_miss_does_not_swallow_a_transition() -> None:
    rules = compile_rules(
        parse_rules(
            """
rules:
  - name: phase
    match: {message: Observed status}
    object: {kind: Node, ref: node}
    transition: {state: "{phase}"}
    reason: PhaseChanged
    message: "{from} -> {to}: {detail}"
""",
            "inline.yaml",
        )
    )
    processor = Processor(rules, TransitionTracker())

    def line(phase: str, **extra: str) -> Record:
        fields = {"node": "n1", "phase": phase, **extra}
        return Record(message="Observed status", fields=fields)

    assert type(processor.process(line("A", detail="x"))) is Unchanged  # first: skip
    assert processor.process(line("B")) == RuleMiss("phase", "detail")
    outcome = processor.process(line("B", detail="y"))
    assert type(outcome) is EventSpec
    assert outcome.message == "A -> B: y"


# --- the pre-filter never changes the outcome ---------------------------------------------------


def test_a_running_pipeline_dates_klog_lines_by_the_clock_of_each_block() -> None:
    """`run` over New Year: the year is not fixed when the daemon starts."""
    rules = compile_rules(
        parse_rules(
            "rules:\n  - name: m\n    match: {message: m}\n    object: {kind: Node, name: n}\n"
            "    reason: Seen\n    message: seen\n",
            "rules.yaml",
        )
    )
    now = [datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC)]
    pipeline = LinePipeline(
        Processor(rules, TransitionTracker()),
        year=None,
        max_line_bytes=4096,
        clock=lambda: now[0],
    )
    [december] = pipeline.feed(b'I1231 23:59:58.000000       1 x.go:1] "m"\n').specs
    now[0] = datetime(2025, 1, 1, 0, 0, 5, tzinfo=UTC)
    [late_december, january] = pipeline.feed(
        b'I1231 23:59:59.000000       1 x.go:1] "m"\nI0101 00:00:04.000000       1 x.go:1] "m"\n'
    ).specs
    assert december.time == datetime(2024, 12, 31, 23, 59, 58, tzinfo=UTC).timestamp()
    assert late_december.time == datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()
    assert january.time == datetime(2025, 1, 1, 0, 0, 4, tzinfo=UTC).timestamp()


def test_the_example_rules_have_a_prefilter() -> None:
    """Otherwise the equivalence tests below would compare the same thing twice."""
    assert EXAMPLE_RULES.literals
    pipeline = new_pipeline(EXAMPLE_RULES)
    pipeline.feed(MIXED_LOG)
    assert pipeline.counts.skipped > 0


def test_a_block_tally_is_what_its_caller_counts_in_the_metrics() -> None:
    """The pipeline touches no metrics: it returns each block's tally for its caller to add."""
    pipeline = new_pipeline(EXAMPLE_RULES)
    fed = pipeline.feed(MIXED_LOG, too_long=2)
    tally, counts = fed.counts, pipeline.counts
    assert tally.lines == MIXED_LOG.count(b"\n") + 2 == counts.lines
    assert tally.too_long == counts.too_long >= 2
    assert tally.matches.total() == counts.matches.total() > 0
    assert len(fed.specs) == counts.events > 0
    registry = CollectorRegistry()
    Metrics(registry).count_lines("file", tally)
    labels = {"source": "file"}
    assert registry.get_sample_value("event_sidecar_lines_read_total", labels) == tally.lines
    assert registry.get_sample_value("event_sidecar_lines_too_long_total", labels) == (
        tally.too_long
    )
    assert registry.get_sample_value("event_sidecar_lines_skipped_total", labels) == (
        counts.skipped
    )
    rule, matched = tally.matches.most_common(1)[0]
    assert registry.get_sample_value("event_sidecar_rule_matches_total", {"rule": rule}) == matched


@pytest.mark.parametrize("case", ["example", *sorted(GOLDEN_RULES)])
def test_prefilter_never_changes_the_outcome_of_known_rules(case: str) -> None:
    rules = EXAMPLE_RULES if case == "example" else GOLDEN_RULES[case]
    assert outcomes_of(rules, MIXED_LOG) == outcomes_of(without_prefilter(rules), MIXED_LOG)


garbage_lines = st.one_of(
    st.binary(max_size=60).map(lambda data: data.replace(b"\n", b"")),
    st.sampled_from(MESSAGES or ["x"]).map(str.encode),
)


@st.composite
def mixed_logs(draw: st.DrawFn) -> bytes:
    """Lines of the real log, reordered, cut short, spliced with garbage and repeated."""
    indices = draw(st.lists(st.integers(0, len(LOG_LINES) - 1), min_size=1, max_size=120))
    out = []
    for index in indices:
        line = LOG_LINES[index]
        action = draw(st.sampled_from(["keep", "keep", "keep", "cut", "splice", "garbage"]))
        if action == "cut":
            line = line[: draw(st.integers(0, len(line)))]
        elif action == "splice":
            at = draw(st.integers(0, len(line)))
            line = line[:at] + draw(garbage_lines) + line[at:]
        elif action == "garbage":
            line = draw(garbage_lines)
        out.append(line + b"\n")
    return b"".join(out)


@PROPERTY
@given(st.sampled_from(["example", *sorted(GOLDEN_RULES)]), mixed_logs())
def test_prefilter_never_changes_the_outcome_on_generated_logs(case: str, log: bytes) -> None:
    rules = EXAMPLE_RULES if case == "example" else GOLDEN_RULES[case]
    assert outcomes_of(rules, log) == outcomes_of(without_prefilter(rules), log)


@PROPERTY
@given(rule_sets())
def test_prefilter_never_changes_the_outcome_of_generated_rules(rules: RuleSet) -> None:
    assert outcomes_of(rules, MIXED_LOG) == outcomes_of(without_prefilter(rules), MIXED_LOG)


@pytest.mark.parametrize(
    ("condition", "line"),
    [
        (
            "{spec: '{\"replicas\":12345678}'}",
            b'2024-01-11T14:21:03Z\tINFO\tScaled\t{"spec": {"replicas": 12345678}}',
        ),
        (
            "{ratio: 0.0000001}",
            b'{"level":"info","ts":1704982863.5,"msg":"Scaled","ratio":0.0000001}',
        ),
    ],
)
def test_prefilter_with_values_spelt_differently(condition: str, line: bytes) -> None:
    rules = compile_rules(
        parse_rules(
            f"""
rules:
  - name: r
    match: {{fields: {condition}}}
    object: {{kind: Node, name: n1}}
    reason: Scaled
""",
            "inline.yaml",
        )
    )
    without = outcomes_of(without_prefilter(rules), line + b"\n")
    assert without[0], "the rule matches the line when every line is decoded"
    assert outcomes_of(rules, line + b"\n") == without


# --- comparisons, cases, env and bare names ------------------------------------------------------


def _compile(text: str, env: dict[str, str] | None = None) -> RuleSet:
    return compile_rules(parse_rules(text, "r.yaml"), env)


@pytest.mark.parametrize(
    ("condition", "matching", "not_matching"),
    [
        ("true", [True, "true", "True", "TRUE"], [False, "yes", "1", 1, None]),
        ("false", [False, "false", "False"], [True, "0", None]),
        ("1.0", [1, 1.0, "1", "1.0", "1e0"], ["1.5", "one", True, None]),
        ("3", [3, "3", "3.0"], [30, "3a"]),
        ('"True"', ["True"], [True, "true"]),
        ('"true"', [True, "true"], ["True"]),
        ("null", [None, "null"], ["", "None"]),
        ("{any: [Ready, true, 2]}", ["Ready", True, "True", 2, "2.0"], ["ready", False, 3]),
    ],
)
def test_booleans_and_numbers_compare_by_value(
    condition: str, matching: list[Any], not_matching: list[Any]
) -> None:
    rules = _compile(
        f"rules:\n  - name: r\n    match: {{fields: {{v: {condition}}}}}\n"
        "    object: {kind: Node, name: n}\n    reason: R\n"
    )
    for value in matching:
        assert rules.first_match(Record("m", fields={"v": value})) is not None, value
    for value in not_matching:
        assert rules.first_match(Record("m", fields={"v": value})) is None, value


CASES = """\
rules:
  - name: phase
    match: {message: phase}
    object: {kind: Node, name: "{node}"}
    transition: {state: "{phase}", first: emit}
    cases:
      - {when: {from: unknown}, emit: false}
      - {when: {to: Failed}, type: Warning, reason: Failed, message: "{node} failed"}
      - {when: {to: {regex: "^Run"}, from: Pending}, reason: Started}
    reason: Changed
    message: "{from} -> {to}"
"""


def test_cases_choose_the_event_and_may_say_none() -> None:
    processor = Processor(_compile(CASES), TransitionTracker())
    seen: list[tuple[str, str, str] | None] = []
    for phase in ["Pending", "Running", "Pending", "Running", "Failed", "Failed"]:
        outcome = processor.process(Record("phase", fields={"node": "n1", "phase": phase}))
        if type(outcome) is EventSpec:
            seen.append((outcome.type, outcome.reason, outcome.message))
        else:
            assert type(outcome) is Unchanged
            seen.append(None)
    assert seen == [
        None,  # unknown -> Pending: emit false, but remembered
        ("Normal", "Started", "Pending -> Running"),
        ("Normal", "Changed", "Running -> Pending"),
        ("Normal", "Started", "Pending -> Running"),
        ("Warning", "Failed", "n1 failed"),
        None,
    ]


def test_rules_sharing_a_tracker_see_each_others_state() -> None:
    text = """\
rules:
  - name: failed
    match: {message: phase, fields: {phase: Failed}}
    object: {kind: Node, name: n}
    transition: {state: "{phase}"%s}
    type: Warning
    reason: Failed
    message: "{from} -> {to}"
  - name: other
    match: {message: phase}
    object: {kind: Node, name: n}
    transition: {state: "{phase}"%s}
    reason: Changed
    message: "{from} -> {to}"
"""
    phases = ["Ready", "Failed", "Ready"]
    for tracker, expected in [
        (", tracker: node", [None, "Ready -> Failed", "Failed -> Ready"]),
        ("", [None, None, None]),  # apart, each rule sees its first line only (first: skip)
    ]:
        processor = Processor(_compile(text % (tracker, tracker)), TransitionTracker())
        got = []
        for phase in phases:
            outcome = processor.process(Record("phase", fields={"phase": phase}))
            got.append(outcome.message if type(outcome) is EventSpec else None)
        assert got == expected


def test_env_is_resolved_at_load_and_a_missing_variable_is_a_miss() -> None:
    text = """\
rules:
  - name: crash
    match: {level: fatal}
    object: {kind: Pod, name: "{env.POD_NAME}", namespace: "{env.POD_NAMESPACE}"}
    type: Warning
    reason: Crashed
    message: "{env.POD_NAME} crashed: {message}"
"""
    record = Record("boom", level="fatal", fields={"env": {"POD_NAME": "from-the-log"}})
    env = {"POD_NAME": "ctl-0", "POD_NAMESPACE": "system"}
    outcome = Processor(_compile(text, env), TransitionTracker()).process(record)
    assert type(outcome) is EventSpec
    assert (outcome.target.name, outcome.target.namespace) == ("ctl-0", "system")
    assert outcome.message == "ctl-0 crashed: boom"
    outcome = Processor(_compile(text, {"POD_NAME": "ctl-0"}), TransitionTracker()).process(record)
    assert outcome == RuleMiss("crash", "env.POD_NAMESPACE")


def test_a_bare_name_in_a_ref_field_takes_the_rules_namespace() -> None:
    text = """\
rules:
  - name: r
    match: {message: m}
    object: {kind: Lease, ref: lease%s}
    reason: R
"""
    for namespace, bare, qualified in [
        ("", ("l1", ""), ("l2", "ns")),
        (", namespace: fallback", ("l1", "fallback"), ("l2", "ns")),
    ]:
        processor = Processor(_compile(text % namespace), TransitionTracker())
        for value, expected in [("l1", bare), ("ns/l2", qualified)]:
            outcome = processor.process(Record("m", fields={"lease": value}))
            assert type(outcome) is EventSpec
            assert (outcome.target.name, outcome.target.namespace) == expected


def test_a_non_ascii_literal_keeps_the_prefilter() -> None:
    rules = _compile(
        "rules:\n  - name: r\n    match: {message: 配额已更新}\n"
        "    object: {kind: Node, name: n}\n    reason: R\n"
    )
    assert rules.literals is not None
    assert "配额已更新".encode() in rules.literals
    assert b"\\u914d\\u989d\\u5df2\\u66f4\\u65b0" in rules.literals
    assert b"\\u914D\\u989D\\u5DF2\\u66F4\\u65B0" in rules.literals
    log = (
        '{"msg":"配额已更新"}\n{"msg":"\\u914d\\u989d\\u5df2\\u66f4\\u65b0"}\n'
        '{"msg":"\\u914D\\u989D\\u5DF2\\u66F4\\u65B0"}\n{"msg":"other"}\n'
    ).encode()
    pipeline = new_pipeline(rules)
    assert len(pipeline.feed(log).specs) == 3
    assert pipeline.counts.skipped == 1


def test_the_crash_example_reports_a_panic_on_the_controllers_own_pod() -> None:
    env = {"POD_NAME": "quota-autoscaler-7d9f8-x2x9k", "POD_NAMESPACE": "quota-system"}
    rules = load_rules(ROOT / "examples" / "controller-crash.rules.yaml", env)
    log = (ROOT / "examples" / "controller-crash.log").read_bytes()
    specs = new_pipeline(rules).feed(log).specs
    assert [(spec.type, spec.reason) for spec in specs] == [
        ("Normal", "ConfigLoaded"),
        ("Warning", "ControllerPanicked"),
    ]
    crash = specs[1]
    assert (crash.target.kind, crash.target.name, crash.target.namespace) == (
        "Pod",
        "quota-autoscaler-7d9f8-x2x9k",
        "quota-system",
    )
    assert crash.message.startswith("panic: assignment to entry in nil map in ")
    assert crash.message.endswith("(/src/internal/controller/expand.go:142)")
