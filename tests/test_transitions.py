"""Transition state: emit on change only, the declared first-observation choice, bounded."""

from __future__ import annotations

from sidecar.core.transitions import Change, StateCount, StateKey, TransitionTracker

KEY = ("phase", "Pod", "shop", "web-0", "")


def observe(
    tracker: TransitionTracker, key: StateKey, state: str, *, first: str, initial: str
) -> Change | None:
    """What the processor does for a line whose Event can be built: compare, then remember."""
    change = tracker.compare(key, state, first=first, initial=initial)
    tracker.remember(key, state)
    return change


def test_first_observation_skip_then_changes_only() -> None:
    tracker = TransitionTracker()
    seen = [observe(tracker, KEY, s, first="skip", initial="?") for s in ["A", "A", "B", "B", "A"]]
    assert seen == [None, None, Change("A", "B"), None, Change("B", "A")]


def test_first_observation_emit_uses_initial() -> None:
    tracker = TransitionTracker()
    assert observe(tracker, KEY, "Ready", first="emit", initial="unknown") == Change(
        "unknown", "Ready"
    )


def test_keys_are_independent() -> None:
    tracker = TransitionTracker()
    other = ("phase", "Pod", "shop", "web-1", "")
    observe(tracker, KEY, "A", first="skip", initial="")
    assert observe(tracker, other, "B", first="skip", initial="") is None
    assert observe(tracker, KEY, "B", first="skip", initial="") == Change("A", "B")


def test_bounded_with_oldest_forgotten() -> None:
    tracker = TransitionTracker(max_keys=2)
    keys = [("r", "Pod", "ns", name, "") for name in "abc"]
    for key in keys:
        observe(tracker, key, "1", first="skip", initial="")
    assert len(tracker) == 2
    # "a" was forgotten: its next line is a first observation again.
    assert observe(tracker, keys[0], "2", first="skip", initial="") is None
    assert observe(tracker, keys[2], "2", first="skip", initial="") == Change("1", "2")


def test_export_and_restore_round_trip() -> None:
    tracker = TransitionTracker()
    observe(tracker, KEY, "A", first="skip", initial="")
    restored = TransitionTracker()
    restored.restore([*tracker.export(), ["malformed"], [1, 2, 3, 4, 5, 6]])  # type: ignore[list-item]
    assert len(restored) == 1
    assert observe(restored, KEY, "B", first="skip", initial="") == Change("A", "B")


def test_a_change_says_how_long_the_object_stayed_in_its_state() -> None:
    tracker = TransitionTracker()
    for state, at in [("A", 10.0), ("A", 15.0), ("B", 25.0)]:
        change = tracker.compare(KEY, state, first="skip", initial="", at=at)
        tracker.remember(KEY, state, at)
    # Entered A at 10 (the line at 15 was the same state), left it at 25.
    assert change == Change("A", "B", 15.0)
    assert tracker.compare(KEY, "C", first="skip", initial="", at=20.0) == Change("B", "C")


def test_census_counts_objects_per_state_and_leaves_out_silent_ones() -> None:
    tracker = TransitionTracker()
    keys = [("r", "Pod", "ns", name, "") for name in "abc"]
    tracker.remember(keys[0], "Ready", 100.0)
    tracker.remember(keys[1], "Ready", 50.0)
    tracker.remember(keys[2], "Failed", 10.0)
    tracker.remember(("other", "Pod", "ns", "a", ""), "Ready", 100.0)
    assert tracker.census(seen_after=0.0) == {
        ("r", "Ready"): StateCount(2, 50.0),
        ("r", "Failed"): StateCount(1, 10.0),
        ("other", "Ready"): StateCount(1, 100.0),
    }
    assert tracker.census(seen_after=60.0) == {
        ("r", "Ready"): StateCount(1, 100.0),
        ("other", "Ready"): StateCount(1, 100.0),
    }


def test_drop_forgets_only_the_named_trackers() -> None:
    tracker = TransitionTracker()
    observe(tracker, KEY, "A", first="skip", initial="")
    observe(tracker, ("kept", "Pod", "ns", "a", ""), "A", first="skip", initial="")
    assert tracker.drop(["phase"]) == 1
    assert [row[0] for row in tracker.export()] == ["kept"]
    assert observe(tracker, KEY, "B", first="skip", initial="") is None
