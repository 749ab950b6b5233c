"""Per-object state for rules that emit only on a change (`transition:` in the rules file).

The state lives in memory, bounded, and can be exported and restored so that a restarted sidecar
neither repeats nor misses a transition (the daemon checkpoints it with the file offsets). Each
object also carries the time it entered its state and the time of its last line (the lines' own
times), which give `event_sidecar_transition_duration_seconds` and the per-state gauges; those two
times are not checkpointed, so the first change of an object after a restart has no duration.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sidecar.core.lru import LRU

#: (tracker, kind, namespace, name, extra key from the rule's `transition.key`); the tracker is
#: the rule's name unless rules share one through `transition.tracker`.
StateKey = tuple[str, str, str, str, str]


#: (state, time it was entered, time of the object's last line); times are None when unknown.
Entry = tuple[str, float | None, float | None]


@dataclass(frozen=True, slots=True)
class Change:
    before: str
    after: str
    #: Seconds the object stayed in `before` (line times); None for a first observation, or when
    #: a time is unknown or went backwards.
    stayed: float | None = None
    #: A first sighting (`first: emit`): `before` is the rule's `initial`, not a state seen.
    #: Not compared: the change is the same states either way.
    first: bool = field(default=False, compare=False)


@dataclass(frozen=True, slots=True)
class StateCount:
    """The objects of one tracker in one state, for the per-state gauges."""

    objects: int
    #: The earliest time one of them entered the state; None when no time is known.
    oldest_since: float | None


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
        self._states: LRU[StateKey, Entry] = LRU(max_keys)
        #: Per tracker of the rules that run, what its states mean (`sidecar.core.rules.tracking.
        #: meanings`), saved with the states so that a restart can tell which still apply.
        self.meanings: dict[str, str] = {}
        self.evicted = 0
        self._evictions_taken = 0

    def __len__(self) -> int:
        return len(self._states)

    def compare(
        self, key: StateKey, state: str, *, first: str, initial: str, at: float | None = None
    ) -> Change | None:
        """The change `state` would be for `key` at time `at`, without remembering it.

        Remembering is a separate step (`remember`) so that a line whose Event cannot be built
        (its rule misses a field) leaves the state alone and a later complete line still reports
        the change.
        """
        entry = self._states.peek(key)
        if entry is None:
            return Change(initial, state, first=True) if first == "emit" else None
        previous, since, _ = entry
        if previous == state:
            return None
        stayed = None if since is None or at is None or at < since else at - since
        return Change(previous, state, stayed)

    def state_of(self, key: StateKey) -> str | None:
        """The state last remembered for `key`, if any (for `explain`)."""
        entry = self._states.peek(key)
        return None if entry is None else entry[0]

    def remember(self, key: StateKey, state: str, at: float | None = None) -> None:
        """Make `state` the last known state of `key` (and `key` the most recently used), seen
        at `at`; the time it entered the state stays unless the state changed."""
        states = self._states
        entry = states.peek(key)
        since = entry[1] if entry is not None and entry[0] == state else at
        if states.put(key, (state, since, at)):
            self.evicted += 1

    def take_evictions(self) -> int:
        """Evictions since the last call: one tracker may feed several pipelines' metrics."""
        new = self.evicted - self._evictions_taken
        self._evictions_taken = self.evicted
        return new

    def export(self) -> list[list[str]]:
        """JSON-ready state, oldest first, for checkpoints."""
        return [[*key, entry[0]] for key, entry in self._states.items()]

    def restore(
        self, rows: Iterable[list[str]], meanings: Mapping[str, str] | None = None
    ) -> list[str]:
        """Load what `export` wrote, saved when the trackers meant `meanings`; return the
        trackers whose state was dropped, sorted.

        A tracker's state is kept only when it meant then what it means now (`self.meanings`),
        the rule a hot reload follows: restarted under rules that render a tracker's state or key
        differently, its old states would be compared with new ones of another kind, each a
        spurious Event. A checkpoint written before meanings were saved (`meanings` None) is
        trusted as it was. Malformed rows are skipped (a checkpoint is a cache).
        """
        current = self.meanings
        dropped: set[str] = set()
        for row in rows:
            if isinstance(row, list) and len(row) == 6 and all(isinstance(x, str) for x in row):
                rule, kind, namespace, name, extra, state = row
                if meanings is not None and (
                    rule not in current or meanings.get(rule) != current[rule]
                ):
                    dropped.add(rule)
                    continue
                self._states.put((rule, kind, namespace, name, extra), (state, None, None))
        return sorted(dropped)

    def drop(self, trackers: Iterable[str]) -> int:
        """Forget every object kept under one of `trackers` (their rules changed how they track,
        so the old states would be compared with states of another kind); how many."""
        names = frozenset(trackers)
        if not names:
            return 0
        states = self._states
        stale = [key for key, _ in states.items() if key[0] in names]
        for key in stale:
            states.pop(key)
        return len(stale)

    def census(self, seen_after: float) -> dict[tuple[str, str], StateCount]:
        """Objects per (tracker, state) among those whose last line is after `seen_after` (an
        object that stopped logging, deleted perhaps, expires from the count but not from the
        state), with the earliest time one of them entered the state. O(objects): it runs once
        per scrape, never per line."""
        objects: dict[tuple[str, str], int] = {}
        oldest: dict[tuple[str, str], float | None] = {}
        for key, (state, since, seen) in self._states.items():
            if seen is not None and seen < seen_after:
                continue
            label = (key[0], state)
            objects[label] = objects.get(label, 0) + 1
            earliest = oldest.get(label)
            if since is not None and (earliest is None or since < earliest):
                oldest[label] = since
            elif label not in oldest:
                oldest[label] = earliest
        return {label: StateCount(number, oldest[label]) for label, number in objects.items()}
