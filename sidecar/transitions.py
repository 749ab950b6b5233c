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


#: Objects remembered at once (about 200 bytes each): the default of `max_keys`.
DEFAULT_MAX_KEYS = 65536


class TransitionTracker:
    """Remembers the last state of each tracked object; the least recent is forgotten past
    `max_keys`, so memory stays bounded whatever the controller logs.

    Forgetting is counted in `evicted` (exported as `event_sidecar_transition_evictions_total`
    through `take_evictions`): an evicted object's next line counts as a first observation,
    which the rule's `first:` setting decides about, so a real change can go unreported.
    """

    def __init__(self, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        self._states: LRU[StateKey, str] = LRU(max_keys)
        self.evicted = 0
        self._evictions_taken = 0

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

    def state_of(self, key: StateKey) -> str | None:
        """The state last remembered for `key`, if any (for `explain`)."""
        return self._states.peek(key)

    def remember(self, key: StateKey, state: str) -> None:
        """Make `state` the last known state of `key` (and `key` the most recently used)."""
        if self._states.put(key, state):
            self.evicted += 1

    def take_evictions(self) -> int:
        """Evictions since the last call: one tracker may feed several pipelines' metrics."""
        new = self.evicted - self._evictions_taken
        self._evictions_taken = self.evicted
        return new

    def export(self) -> list[list[str]]:
        """JSON-ready state, oldest first, for checkpoints."""
        return [[*key, state] for key, state in self._states.items()]

    def restore(self, rows: Iterable[list[str]]) -> None:
        """Load what `export` wrote; malformed rows are skipped (a checkpoint is a cache)."""
        for row in rows:
            if isinstance(row, list) and len(row) == 6 and all(isinstance(x, str) for x in row):
                rule, kind, namespace, name, extra, state = row
                self._states.put((rule, kind, namespace, name, extra), state)
