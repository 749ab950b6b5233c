"""The cardinality guard for label values that come from the log (transition states).

Every Prometheus series costs memory in the sidecar and in Prometheus for as long as it exists,
and a state is whatever the controller logged: a bug that logs a timestamp as the state would
create a series per line. So each rule (tracker) gets at most `limit` distinct values, first come
first served; later ones are reported as `other`, and the caller counts how often.
"""

from __future__ import annotations

from collections.abc import Iterable

#: The value that stands for every value past the limit.
OTHER = "other"
#: Distinct state values per rule before `other`: far more than a real state machine has.
DEFAULT_MAX_VALUES = 50


class LabelGuard:
    """Admits at most `limit` distinct values per group; the rest become `OTHER`."""

    def __init__(self, limit: int = DEFAULT_MAX_VALUES) -> None:
        self.limit = limit
        self._admitted: dict[str, set[str]] = {}

    def admit(self, group: str, value: str) -> str:
        """`value` when it is (or can still be) one of the group's values, else `OTHER`."""
        admitted = self._admitted.get(group)
        if admitted is None:
            admitted = self._admitted[group] = set()
        if value in admitted:
            return value
        if len(admitted) >= self.limit:
            return OTHER
        admitted.add(value)
        return value

    def forget(self, groups: Iterable[str]) -> None:
        """Start `groups` afresh (their rules changed, so will their values)."""
        for group in groups:
            self._admitted.pop(group, None)
