"""The cardinality guard on label values from the log."""

from __future__ import annotations

from sidecar.core.labels import OTHER, LabelGuard


def test_values_past_the_limit_become_other_per_group() -> None:
    guard = LabelGuard(limit=2)
    assert [guard.admit("r", v) for v in ["a", "b", "c", "a", "b", "d"]] == [
        "a",
        "b",
        OTHER,
        "a",
        "b",
        OTHER,
    ]
    assert guard.admit("s", "c") == "c"  # another rule has its own room


def test_a_forgotten_group_starts_afresh() -> None:
    guard = LabelGuard(limit=1)
    guard.admit("r", "a")
    guard.forget(["r"])
    assert guard.admit("r", "b") == "b"
