"""Fewer repeated cases: a reason from the state, a first-sighting message given once, and
templates that take part of a value (filters)."""

from __future__ import annotations

import json

import pytest
from prometheus_client import CollectorRegistry

from sidecar.core.events.corev1 import Event
from sidecar.core.lines.records import Record
from sidecar.core.rules import RulesError, compile_rules, parse_rules, render
from sidecar.core.rules.schema import REASON_LIMIT
from sidecar.core.rules.templates import TemplateError, compile_template
from sidecar.core.rules.tracking import meanings
from sidecar.offline.replay import ReplaySettings, replay
from sidecar.runtime.metrics import Metrics
from sidecar.runtime.sinks import MemorySink

#: Seven states, two of them trouble. Each needs a reason of its own, "phase is X" on a first
#: sighting and "phase A -> X" on a change.
STATES = {
    "Pending": "Pending",
    "Provisioning": "Provisioning",
    "Ready": "Ready",
    "Degraded": "Degraded",
    "Failed": "Failed",
    "Deleting": "Deleting",
    "Deleted": "Deleted",
}
TROUBLE = ("Degraded", "Failed")

HEAD = """component: provisioner
rules:
  - name: phase
    match: {message: Observed phase}
    object: {apiVersion: example.com/v1, kind: Database, ref: Database}
"""


def _fourteen_cases() -> str:
    """The rules file as it had to be written: two cases per state."""
    cases = []
    for state in STATES:
        kind = "Warning" if state in TROUBLE else "Normal"
        cases.append(
            f"      - when: {{from: unknown, to: {state}}}\n"
            f"        type: {kind}\n        reason: {state}\n"
            f'        message: "phase is {{to}}"\n'
        )
        cases.append(
            f"      - when: {{to: {state}}}\n        type: {kind}\n        reason: {state}\n"
        )
    return (
        HEAD
        + '    transition: {state: "{phase}", first: emit}\n    cases:\n'
        + "".join(cases)
        + '    reason: PhaseChanged\n    message: "phase {from} -> {to}"\n'
    )


COMPACT = (
    HEAD
    + """    transition: {state: "{phase}", first: emit, first_message: "phase is {to}"}
    cases:
      - when: {to: {any: [Degraded, Failed]}}
        type: Warning
    reason: "{to|camel}"
    message: "phase {from} -> {to}"
"""
)


def _log() -> bytes:
    story = {
        "db-1": ["Pending", "Provisioning", "Ready", "Degraded", "Ready", "Deleting", "Deleted"],
        "db-2": ["Provisioning", "Failed", "Provisioning", "Ready"],
        "db-3": ["Ready", "Ready", "Degraded"],
        "db-4": ["Failed"],
    }
    lines = []
    second = 0
    for step in range(7):
        for name, phases in story.items():
            if step < len(phases):
                second += 1
                line = {
                    "level": "info",
                    "ts": f"2026-12-06T01:00:{second:02d}Z",
                    "msg": "Observed phase",
                    "phase": phases[step],
                    "Database": {"name": name, "namespace": "shop"},
                }
                lines.append(json.dumps(line))
    return ("\n".join(lines) + "\n").encode()


def _events(text: str, log: bytes) -> list[Event]:
    rules = compile_rules(parse_rules(text, "rules.yaml"))
    sink = MemorySink()
    replay([log], rules, sink, Metrics(CollectorRegistry()), settings=ReplaySettings())
    return list(sink.events.values())


def test_seven_states_need_one_case_instead_of_fourteen_for_the_same_events() -> None:
    old, new = parse_rules(_fourteen_cases(), "old.yaml"), parse_rules(COMPACT, "new.yaml")
    assert (len(old.rules[0].cases), len(new.rules[0].cases)) == (14, 1)
    before, after = _events(_fourteen_cases(), _log()), _events(COMPACT, _log())
    assert len(before) == 14  # 7 + 4 + 2 + 1: each first sighting and change
    assert after == before  # every field of every Event, names and times included
    described = {(e.involved.name, e.type, e.reason, e.message) for e in after}
    assert ("db-4", "Warning", "Failed", "phase is Failed") in described
    assert ("db-1", "Warning", "Degraded", "phase Ready -> Degraded") in described
    assert ("db-1", "Normal", "Pending", "phase is Pending") in described


def _one(text: str, record: Record) -> tuple[str, str]:
    from sidecar.core.pipeline import Processor  # noqa: PLC0415
    from sidecar.core.transitions import TransitionTracker  # noqa: PLC0415
    from sidecar.model import EventSpec  # noqa: PLC0415

    processor = Processor(compile_rules(parse_rules(text, "r.yaml")), TransitionTracker())
    outcome = processor.process(record)
    assert isinstance(outcome, EventSpec), outcome
    return outcome.reason, outcome.message


CODES = """rules:
  - name: failed
    match: {message: Sync failed}
    object: {kind: ConfigMap, name: "{cm}", namespace: ns}
    type: Warning
    reason: "Sync{code|camel}"
    message: "{error|first_line}"
"""


def _sync(code: str, error: str = "boom") -> Record:
    return Record("Sync failed", fields={"cm": "a", "code": code, "error": error})


def test_a_reason_from_the_line_is_made_a_reason_or_stands_in() -> None:
    assert _one(CODES, _sync("not_found")) == ("SyncNotFound", "boom")
    assert _one(CODES, _sync("conflict")) == ("SyncConflict", "boom")
    assert _one(CODES, _sync("!!!"))[0] == "Sync"  # nothing of it is a word: still a reason
    assert _one(CODES, _sync("x" * 200))[0] == "SyncOther"  # longer than a reason may be
    plain = CODES.replace('"Sync{code|camel}"', '"{code}"')
    assert _one(plain, _sync("NotFound"))[0] == "NotFound"
    assert _one(plain, _sync("not found"))[0] == "Other"  # not a reason as it is written


def test_reasons_from_lines_are_bounded_per_rule() -> None:
    from sidecar.core.pipeline import Processor  # noqa: PLC0415
    from sidecar.core.transitions import TransitionTracker  # noqa: PLC0415
    from sidecar.model import EventSpec  # noqa: PLC0415

    processor = Processor(compile_rules(parse_rules(CODES, "r.yaml")), TransitionTracker())
    reasons = []
    for number in range(REASON_LIMIT + 5):
        outcome = processor.process(_sync(f"code{number}"))
        assert isinstance(outcome, EventSpec)
        reasons.append(outcome.reason)
    assert len(set(reasons[:REASON_LIMIT])) == REASON_LIMIT
    assert set(reasons[REASON_LIMIT:]) == {"SyncOther"}
    # One seen before the limit was reached stays itself.
    assert isinstance(again := processor.process(_sync("code3")), EventSpec)
    assert again.reason == "SyncCode3"


@pytest.mark.parametrize(
    ("reason", "wanted"),
    [
        ('"{to} now"', "cannot make a reason"),
        ('"phase{to}"', "cannot make a reason"),
        ('"{to|nope}"', "is not a filter"),
    ],
)
def test_a_reason_template_that_cannot_make_a_reason_is_refused(reason: str, wanted: str) -> None:
    text = COMPACT.replace('reason: "{to|camel}"', f"reason: {reason}")
    with pytest.raises(RulesError, match=wanted):
        parse_rules(text, "r.yaml")


def test_a_first_message_needs_first_emit() -> None:
    text = COMPACT.replace("first: emit, ", "first: skip, ")
    with pytest.raises(RulesError, match="first_message is the message of a first sighting"):
        parse_rules(text, "r.yaml")


def test_a_case_message_wins_over_the_first_message() -> None:
    text = COMPACT.replace(
        "        type: Warning\n", '        type: Warning\n        message: "trouble: {to}"\n'
    )
    record = Record(
        "Observed phase", fields={"phase": "Failed", "Database": {"name": "a", "namespace": "b"}}
    )
    assert _one(text, record) == ("Failed", "trouble: Failed")
    ready = Record(
        "Observed phase", fields={"phase": "Ready", "Database": {"name": "a", "namespace": "b"}}
    )
    assert _one(text, ready) == ("Ready", "phase is Ready")


STACK = 'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: bad'


@pytest.mark.parametrize(
    ("template", "rendered"),
    [
        ("{stack|first_line}", "Traceback (most recent call last):"),
        ("{stack|first_line|lower}", "traceback (most recent call last):"),
        ("{state|camel}", "InProgress"),
        ("{state|upper}", "IN_PROGRESS"),
        ("{padded|trim}!", "x!"),
        ("{one|first_line}", "one line"),
        ("{count|first_line}", "3"),  # a number's JSON text
    ],
)
def test_filters_take_part_of_a_value(template: str, rendered: str) -> None:
    record = Record(
        "m",
        fields={
            "stack": STACK,
            "state": "in_progress",
            "padded": "  x \n",
            "one": "one line",
            "count": 3,
        },
    )
    assert render(compile_template(template), record) == rendered


def test_filters_apply_to_captures_and_klog_multi_line_values() -> None:
    """A klog `key=<` value spans lines; a capture is a field like any other."""
    from sidecar.core.lines.decode import decode  # noqa: PLC0415

    line = (
        b'I1120 09:00:00.000000       1 main.go:61] "Loaded configuration" config=<\n'
        b"\tresync: 10m\n\tmaxConcurrentReconciles: 2\n >"
    )
    record = decode(line, year=2026)
    assert isinstance(record, Record)
    rules = """rules:
  - name: config
    match: {message: {regex: "^Loaded (?P<what>[a-z]+)"}}
    object: {kind: ConfigMap, name: cfg, namespace: ns}
    reason: "Loaded{what|camel}"
    message: "{config|first_line|trim} ({what|upper})"
"""
    assert _one(rules, record) == ("LoadedConfiguration", "resync: 10m (CONFIGURATION)")


def test_a_template_without_filters_is_what_it_was() -> None:
    template = compile_template("{a} and {b.c}")
    assert template.filters is None
    # A `|` in a selector's value is the path's, not a filter.
    assert compile_template('{items[k="x|y"].v}').filters is None
    with pytest.raises(TemplateError, match="is not a filter"):
        compile_template("{a|first}")


def test_the_tracking_of_a_rule_without_filters_digests_as_before() -> None:
    """Checkpoints keep the states of rules written before filters: the same digest text."""
    import hashlib  # noqa: PLC0415

    rules = compile_rules(parse_rules(COMPACT, "r.yaml"))
    transition = rules.rules[0].transition
    assert transition is not None
    text = repr((transition.state.parts, transition.key.parts))
    expected = hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
    assert meanings(rules) == {"phase": expected}
    lowered = COMPACT.replace('state: "{phase}"', 'state: "{phase|lower}"')
    assert meanings(compile_rules(parse_rules(lowered, "r.yaml"))) != {"phase": expected}


def test_replaced_reasons_are_counted_by_rule() -> None:
    """As state labels past their limit are: `event_sidecar_reasons_replaced_total{rule}`."""
    lines = [
        # One object each: the spam filter allows 25 Events per object.
        json.dumps({"msg": "Sync failed", "cm": f"c{n}", "code": code, "error": "e", "ts": n})
        for n, code in enumerate(
            [f"Code{n}" for n in range(REASON_LIMIT + 3)] + ["not a reason!", "Code1"]
        )
    ]
    registry = CollectorRegistry()
    rules = compile_rules(parse_rules(CODES.replace("Sync{code|camel}", "{code}"), "r.yaml"))
    sink = MemorySink()
    replay(["\n".join(lines).encode() + b"\n"], rules, sink, Metrics(registry))
    reasons = {event.reason for event in sink.events.values()}
    assert "Other" in reasons and len(reasons) == REASON_LIMIT + 1
    replaced = registry.get_sample_value("event_sidecar_reasons_replaced_total", {"rule": "failed"})
    assert replaced == 4  # three past the limit, and one that is no reason
