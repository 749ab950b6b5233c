"""Per-object state for rules that emit only on a change (`transition:` in the rules file).

The state lives in memory, bounded, and can be exported and restored so that a restarted sidecar
neither repeats nor misses a transition (the daemon checkpoints it with the file offsets).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sidecar.lru import LRU

#: (tracker, kind, namespace, name, extra key from the rule's `transition.key`); the tracker is
#: the rule's name unless rules share one through `transition.tracker`.
StateKey = tuple[str, str, str, str, str]


@dataclass(frozen=True, slots=True)
class Change:
    before: str
    after: str


class TransitionTracker:
    """Remembers the last state of each tracked object; the oldest is forgotten past `max_keys`.

    An evicted object's next line counts as a first observation, which the rule's `first:`
    setting decides about.
    """

    def __init__(self, max_keys: int = 65536) -> None:
        self._states: LRU[StateKey, str] = LRU(max_keys)

    def __len__(self) -> int:
        return len(self._states)

    def compare(self, key: StateKey, state: str, *, first: str, initial: str) -> Change | None:
        """The change `state` would be for `key`, without remembering it.

        Remembering is a separate step (`remember`) so that a line whose Event cannot be built
        (its rule misses a field) leaves the state alone and a later complete line still reports
        the change.
        """
        previous = self._states.peek(key)
        if previous is None:
            return Change(initial, state) if first == "emit" else None
        if previous == state:
            return None
        return Change(previous, state)

    def remember(self, key: StateKey, state: str) -> None:
        """Make `state` the last known state of `key` (and `key` the most recently used)."""
        self._states.put(key, state)

    def export(self) -> list[list[str]]:
        """JSON-ready state, oldest first, for checkpoints."""
        return [[*key, state] for key, state in self._states.items()]

    def restore(self, rows: Iterable[list[str]]) -> None:
        """Load what `export` wrote; malformed rows are skipped (a checkpoint is a cache)."""
        for row in rows:
            if isinstance(row, list) and len(row) == 6 and all(isinstance(x, str) for x in row):
                rule, kind, namespace, name, extra, state = row
                self._states.put((rule, kind, namespace, name, extra), state)
