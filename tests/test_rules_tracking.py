"""Which trackers' state carries over a rules reload, and a restart under other rules."""

from __future__ import annotations

from pathlib import Path

from sidecar.core.rules import RuleSet, compile_rules, parse_rules
from sidecar.core.rules.tracking import changed_trackers, meanings
from sidecar.core.transitions import TransitionTracker
from sidecar.runtime.checkpoints import Checkpoint, read_checkpoint, write_checkpoint

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


def test_a_restore_keeps_only_the_trackers_whose_states_mean_the_same() -> None:
    """What a checkpoint saved under other rules: the same comparison as a reload's."""
    saved = meanings(rules(BASE))
    now = rules(BASE.replace('"{health}"', '"{health}!"'))
    tracker = TransitionTracker()
    tracker.meanings = meanings(now)
    rows = [["phase", "Pod", "ns", "a", "Pod", "Ready"], ["health", "Pod", "ns", "a", "", "ok"]]
    assert tracker.restore(rows, saved) == ["health"]
    assert tracker.export() == [rows[0]]
    # A checkpoint from before meanings were saved is trusted, as it was.
    old = TransitionTracker()
    old.meanings = meanings(now)
    assert old.restore(rows, None) == []
    assert len(old) == 2


def test_meanings_follow_the_environment_and_are_stable() -> None:
    zoned = BASE.replace('state: "{health}"', 'state: "{health}/{env.ZONE}"')
    here = meanings(compile_rules(parse_rules(zoned, "r.yaml"), {"ZONE": "a"}))
    there = meanings(compile_rules(parse_rules(zoned, "r.yaml"), {"ZONE": "b"}))
    assert here["health"] != there["health"]
    assert here["phase"] == there["phase"] == meanings(rules(BASE))["phase"]
    # The digest goes into checkpoints: the same in every process (no `hash()` of a string).
    assert len(here["phase"]) == 16
    assert here == meanings(compile_rules(parse_rules(zoned, "r.yaml"), {"ZONE": "a"}))


def test_tracker_meanings_round_trip_through_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.json"
    saved = Checkpoint(
        transitions=(("phase", "Pod", "ns", "a", "", "Ready"),),
        trackers=(("phase", "0123456789abcdef"),),
    )
    write_checkpoint(path, saved)
    assert read_checkpoint(path) == saved
    write_checkpoint(path, Checkpoint(transitions=saved.transitions))
    loaded = read_checkpoint(path)
    assert loaded is not None and loaded.trackers is None
