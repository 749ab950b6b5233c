"""Which trackers' state carries over a rules reload."""

from __future__ import annotations

from sidecar.rules import RuleSet, compile_rules, parse_rules
from sidecar.rules.tracking import changed_trackers

BASE = """\
rules:
  - name: phase
    match: {message: Observed status}
    transition: {state: "{phase}", key: "{kind}"}
    reason: PhaseChanged
    message: "{from} -> {to}"
  - name: health
    match: {message: Health}
    transition: {state: "{health}", first: emit}
    reason: HealthChanged
    message: "{from} -> {to}"
"""


def rules(text: str) -> RuleSet:
    return compile_rules(parse_rules(text, "rules.yaml"), {"ZONE": "a"})


def test_only_what_renders_the_state_or_key_counts() -> None:
    old = rules(BASE)
    assert changed_trackers(old, rules(BASE)) == frozenset()
    reworded = BASE.replace("PhaseChanged", "PhaseMoved").replace("first: emit", "first: skip")
    assert changed_trackers(old, rules(reworded)) == frozenset()
    assert changed_trackers(old, rules(BASE.replace('"{health}"', '"{health}!"'))) == {"health"}
    assert changed_trackers(old, rules(BASE.replace('key: "{kind}"', "key: ''"))) == {"phase"}


def test_a_renamed_or_removed_tracker_is_dropped_and_a_shared_one_kept() -> None:
    old = rules(BASE)
    assert changed_trackers(old, rules(BASE.replace("name: health", "name: healthy"))) == {"health"}
    shared = BASE.replace("name: health", "name: healthy").replace(
        "first: emit}", "first: emit, tracker: health}"
    )
    assert changed_trackers(old, rules(shared)) == frozenset()


def test_env_values_are_part_of_the_template() -> None:
    text = BASE.replace('"{phase}"', '"{env.ZONE}/{phase}"')
    before = compile_rules(parse_rules(text, "rules.yaml"), {"ZONE": "a"})
    after = compile_rules(parse_rules(text, "rules.yaml"), {"ZONE": "b"})
    assert changed_trackers(before, after) == {"phase"}
