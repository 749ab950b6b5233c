"""events.k8s.io/v1 series, as client-go's `tools/events` recorder keeps them.

`SeriesCache` is `eventBroadcasterImpl`'s cache, keyed by the isomorphic key (type, action,
reason, reportingController, reportingInstance, regarding, related; the note is not part of it,
so the first note is kept):

- the first occurrence is created;
- the second PATCHes `series{count: 2, lastObservedTime}`;
- later ones only raise the count in memory;
- the heartbeat (`due`) PATCHes every live series every `refresh_seconds` (client-go's
  `refreshTime`, 30 min), and gives a series silent for `finish_seconds` (`finishTime`, 6 min)
  its final count.

Beyond client-go, so that a line read again after a restart is decided as it was the first time
(the cache's state travels in the checkpoint: `export`, `restore`):

- a series ends on the lines' clock, as the correlator's windows do: an occurrence more than
  `finish_seconds` after the series' last one starts a new Event, however late the heartbeat
  ran; the heartbeat forgets only what that rule already ended;
- the key leaves out the objects' resourceVersion, which the sidecar learns from a cached
  look-up (a restart looks the object up again) and which says nothing about the Event;
- every write is decided when it is returned (`stored`), on the one thread that decides, so a
  checkpoint taken between two decisions and committed once the writes before it ended tells
  exactly what the API holds and what is still only in memory;
- `pending` gives every series whose count is ahead of what was written, so a shutdown writes
  the last counts instead of losing them, and the cache is bounded (an LRU; a series evicted
  with counts not written gets its final PATCH).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Final

from sidecar.core.events.corev1 import InvolvedObject
from sidecar.core.events.eventsv1 import ModernEvent

#: client-go's `finishTime` and `refreshTime`.
FINISH_SECONDS: Final = 6 * 60.0
REFRESH_SECONDS: Final = 30 * 60.0


@dataclass(slots=True)
class _Entry:
    #: The Event as observed so far: `series_count` (0 for one occurrence) and `last_observed`.
    event: ModernEvent
    #: Occurrences the writes decided so far store (1: the create; n >= 2: series count n).
    #: Decided, not confirmed: a checkpoint taken with it is committed only once those writes
    #: ended, so after a commit it is what the API holds (less counted drops).
    stored: int
    #: When a write was last decided (the heartbeat's refresh counts from it).
    written_at: float

    def count(self) -> int:
        return max(self.event.series_count, 1)


@dataclass(frozen=True, slots=True)
class SeriesWrite:
    """Create `event` (when `create`), else PATCH its series (re-create on 404). `occurrence`:
    the write an occurrence called for (counted in `events_emitted`), not a heartbeat's."""

    event: ModernEvent
    create: bool
    occurrence: bool = True


@dataclass(frozen=True, slots=True)
class SeriesRecord:
    """One series as a checkpoint carries it: the Event as observed (its count and last time),
    how many occurrences the API was told about (`stored`), and when it was last written."""

    event: ModernEvent
    stored: int
    written_at: float


@dataclass(slots=True)
class SeriesCache:
    """client-go's isomorphic-event cache (see the module docstring). Not thread-safe: one thread
    decides (observes, ticks, exports), in the lines' order; the writes it returns may be made
    anywhere, each series' in order."""

    finish_seconds: float = FINISH_SECONDS
    refresh_seconds: float = REFRESH_SECONDS
    size: int = 4096
    #: Least recently observed first (a dict re-inserted on use: an LRU with removal).
    _entries: dict[tuple[object, ...], _Entry] = field(init=False, default_factory=dict)
    #: The latest line time observed: the lines' clock, which alone decides when a series ends.
    _latest: float = field(init=False, default=0.0)

    def __len__(self) -> int:
        return len(self._entries)

    def observe(self, event: ModernEvent, now: float) -> list[SeriesWrite]:
        """The writes this occurrence calls for: a create, or the count-2 PATCH, or none (later
        occurrences wait for the heartbeat); before a create, the final PATCH of the series it
        ends (quiet for `finish_seconds` on the lines' clock) or evicts, if it has counts the
        API was not told about."""
        key = event.key()
        entries = self._entries
        self._latest = max(self._latest, now)
        entry = entries.pop(key, None)
        writes: list[SeriesWrite] = []
        if entry is not None and now - entry.event.last_observed > self.finish_seconds:
            # Ended on the lines' clock, so a line read again after a restart ends it too.
            if entry.count() > entry.stored:
                writes.append(self._decide(entry, now, occurrence=False))
            entry = None
        if entry is None:
            entries[key] = _Entry(replace(event, last_observed=now), 1, now)
            writes.append(SeriesWrite(entries[key].event, create=True))
            while len(entries) > self.size:
                evicted = entries.pop(next(iter(entries)))
                if evicted.count() > evicted.stored:
                    writes.append(self._decide(evicted, now, occurrence=False))
            return writes
        entries[key] = entry
        entry.event = replace(entry.event, series_count=entry.count() + 1, last_observed=now)
        if entry.event.series_count == 2:
            writes.append(self._decide(entry, now, occurrence=True))
        return writes

    def _decide(self, entry: _Entry, now: float, *, occurrence: bool) -> SeriesWrite:
        """PATCH `entry`'s series to its count, noted as stored (see `_Entry.stored`)."""
        entry.stored = entry.count()
        entry.written_at = now
        return SeriesWrite(entry.event, create=False, occurrence=occurrence)

    def due(self, now: float) -> list[SeriesWrite]:
        """The heartbeat, at wall-clock `now`: PATCH the series quiet for `finish_seconds` whose
        count the API lacks (their final count) and refresh those written `refresh_seconds` ago.
        Forgotten: what is stored and ended on the lines' clock (its next occurrence starts a
        new Event whenever it comes), so that forgetting changes no decision."""
        writes = []
        for key, entry in list(self._entries.items()):
            event = entry.event
            quiet = now - event.last_observed > self.finish_seconds
            # A quiet series' final count; a live one's refresh.
            due = (
                entry.count() > entry.stored
                if quiet
                else now - entry.written_at >= self.refresh_seconds
            )
            if event.series_count and due:
                writes.append(self._decide(entry, now, occurrence=False))
            if (
                entry.count() <= entry.stored
                and self._latest - event.last_observed > self.finish_seconds
            ):
                del self._entries[key]
        return writes

    def pending(self, now: float) -> list[SeriesWrite]:
        """PATCHes of every series whose count is ahead of what the API was told (a shutdown,
        the end of a replay)."""
        return [
            self._decide(entry, now, occurrence=False)
            for entry in list(self._entries.values())
            if entry.count() > entry.stored
        ]

    def export(self) -> tuple[SeriesRecord, ...]:
        """Every series, least recently observed first, for a checkpoint."""
        return tuple(
            SeriesRecord(entry.event, entry.stored, entry.written_at)
            for entry in self._entries.values()
        )

    def restore(self, records: tuple[SeriesRecord, ...]) -> None:
        """Load what `export` saved: a repeat read after a restart continues its series at the
        saved count, and counts the API was not told about are still pending (the heartbeat or
        the shutdown writes them)."""
        for record in records[-self.size :]:
            event = record.event
            entry = _Entry(event, max(0, record.stored), record.written_at)
            self._entries.pop(event.key(), None)
            self._entries[event.key()] = entry
            self._latest = max(self._latest, event.last_observed)


def series_row(record: SeriesRecord) -> dict[str, Any]:
    """`record` as a checkpoint's JSON object."""
    event = record.event
    return {
        "name": event.name,
        "namespace": event.namespace,
        "regarding": _reference_row(event.regarding),
        "related": None if event.related is None else _reference_row(event.related),
        "type": event.type,
        "reason": event.reason,
        "action": event.action,
        "note": event.note,
        "controller": event.controller,
        "instance": event.instance,
        "event_time": event.event_time,
        "count": max(event.series_count, 1),
        "last_observed": event.last_observed,
        "stored": record.stored,
        "written_at": record.written_at,
    }


def parse_series_row(row: Any) -> SeriesRecord:
    """What `series_row` wrote. Raises TypeError, ValueError or KeyError when it is not that."""
    count = _integer(row["count"])
    stored = _integer(row["stored"])
    if not 1 <= stored <= count:
        raise ValueError(f"series counts out of range: {count} observed, {stored} stored")
    related = row["related"]
    event = ModernEvent(
        name=_string(row["name"]),
        namespace=_string(row["namespace"]),
        regarding=_reference(row["regarding"]),
        related=None if related is None else _reference(related),
        type=_string(row["type"]),
        reason=_string(row["reason"]),
        action=_string(row["action"]),
        note=_string(row["note"]),
        controller=_string(row["controller"]),
        instance=_string(row["instance"]),
        event_time=_seconds(row["event_time"]),
        series_count=count if count > 1 else 0,
        last_observed=_seconds(row["last_observed"]),
    )
    return SeriesRecord(event, stored, _seconds(row["written_at"]))


_REFERENCE_FIELDS: Final = (
    "kind",
    "name",
    "namespace",
    "api_version",
    "uid",
    "resource_version",
    "field_path",
)


def _reference_row(reference: InvolvedObject) -> list[str]:
    return [getattr(reference, name) for name in _REFERENCE_FIELDS]


def _reference(row: Any) -> InvolvedObject:
    if not isinstance(row, list) or len(row) != len(_REFERENCE_FIELDS):
        raise TypeError(f"not an object reference: {row!r}")
    return InvolvedObject(*(_string(value) for value in row))


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"not a string: {value!r}")
    return value


def _integer(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise TypeError(f"not a count: {value!r}")
    return value


def _seconds(value: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise TypeError(f"not a time: {value!r}")
    return float(value)
