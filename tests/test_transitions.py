"""Transition state: emit on change only, the declared first-observation choice, bounded."""

from __future__ import annotations

from sidecar.transitions import Change, TransitionTracker

KEY = ("phase", "Pod", "shop", "web-0", "")


def test_first_observation_skip_then_changes_only() -> None:
    tracker = TransitionTracker()
    seen = [tracker.observe(KEY, s, first="skip", initial="?") for s in ["A", "A", "B", "B", "A"]]
    assert seen == [None, None, Change("A", "B"), None, Change("B", "A")]


def test_first_observation_emit_uses_initial() -> None:
    tracker = TransitionTracker()
    assert tracker.observe(KEY, "Ready", first="emit", initial="unknown") == Change(
        "unknown", "Ready"
    )


def test_keys_are_independent() -> None:
    tracker = TransitionTracker()
    other = ("phase", "Pod", "shop", "web-1", "")
    tracker.observe(KEY, "A", first="skip", initial="")
    assert tracker.observe(other, "B", first="skip", initial="") is None
    assert tracker.observe(KEY, "B", first="skip", initial="") == Change("A", "B")


def test_bounded_with_oldest_forgotten_and_counted() -> None:
    tracker = TransitionTracker(max_keys=2)
    keys = [("r", "Pod", "ns", name, "") for name in "abc"]
    for key in keys:
        tracker.observe(key, "1", first="skip", initial="")
    assert len(tracker) == 2
    assert tracker.evicted == 1
    # "a" was forgotten: its next line is a first observation again.
    assert tracker.observe(keys[0], "2", first="skip", initial="") is None
    assert tracker.observe(keys[2], "2", first="skip", initial="") == Change("1", "2")


def test_export_and_restore_round_trip() -> None:
    tracker = TransitionTracker()
    tracker.observe(KEY, "A", first="skip", initial="")
    restored = TransitionTracker()
    restored.restore([*tracker.export(), ["malformed"], [1, 2, 3, 4, 5, 6]])  # type: ignore[list-item]
    assert len(restored) == 1
    assert restored.observe(KEY, "B", first="skip", initial="") == Change("A", "B")
