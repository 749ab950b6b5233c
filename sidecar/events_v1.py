"""events.k8s.io/v1 Events and their series, as client-go's `tools/events` recorder writes them.

The body (`ModernEvent.to_body`) is `makeEvent`'s: `eventTime` in microseconds, `regarding`,
optional `related`, `action`, `note`, `reportingController`, `reportingInstance`, `type`,
`reason`, and none of the legacy fields (the apiserver refuses `count`, `firstTimestamp`,
`lastTimestamp` and `source` on this API).

`SeriesCache` is `eventBroadcasterImpl`'s cache, keyed by the isomorphic key (type, action,
reason, reportingController, reportingInstance, regarding, related; the note is not part of it,
so the first note is kept):

- the first occurrence is created;
- the second PATCHes `series{count: 2, lastObservedTime}`;
- later ones only raise the count in memory;
- the heartbeat (`due`) PATCHes every live series every `refresh_seconds` (client-go's
  `refreshTime`, 30 min), and closes a series silent for `finish_seconds` (`finishTime`, 6 min)
  with a final PATCH; a singleton is forgotten after `finish_seconds`, so its next occurrence
  starts a new Event.

Beyond client-go: `pending` gives every series whose count is ahead of what was written, so a
shutdown writes the last counts instead of losing them, and the cache is bounded (an LRU).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from sidecar.events import EVENT_TYPES, REASON_LIMIT, InvalidEvent, InvolvedObject, truncate_message

API_VERSION: Final = "events.k8s.io/v1"
#: The apiserver's `ReportingInstanceLengthLimit` and `ActionLengthLimit`.
INSTANCE_LIMIT: Final = 128
ACTION_LIMIT: Final = 128
#: client-go's `finishTime` and `refreshTime`.
FINISH_SECONDS: Final = 6 * 60.0
REFRESH_SECONDS: Final = 30 * 60.0
#: `reportingController` must be a qualified name (`[prefix/]name`), as a label key.
_QUALIFIED = re.compile(
    r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
)


def micro_time(seconds: float) -> str:
    """metav1.MicroTime's wire form: UTC, six fraction digits, `Z`."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def reporting_instance(controller: str, host: str) -> str:
    """client-go's `<controller>-<hostname>`, cut to the apiserver's 128 characters."""
    instance = f"{controller}-{host}" if host else controller
    return instance[:INSTANCE_LIMIT]


@dataclass(frozen=True, slots=True)
class ModernEvent:
    """One events.k8s.io/v1 Event; `series_count` 0 means no series yet (a singleton)."""

    name: str
    namespace: str
    regarding: InvolvedObject
    related: InvolvedObject | None
    type: str
    reason: str
    action: str
    note: str
    controller: str
    instance: str
    #: Seconds since the epoch of the first occurrence; rendered in microseconds.
    event_time: float
    series_count: int = 0
    last_observed: float = 0.0

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "apiVersion": API_VERSION,
            "kind": "Event",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "eventTime": micro_time(self.event_time),
            "reportingController": self.controller,
            "reportingInstance": self.instance,
            "action": self.action,
            "reason": self.reason,
            "regarding": self.regarding.to_body(),
            "note": self.note,
            "type": self.type,
        }
        if self.related is not None:
            body["related"] = self.related.to_body()
        if self.series_count:
            body.update(self.series_patch())
        return body

    def series_patch(self) -> dict[str, Any]:
        """client-go's two-way merge patch of the Event without and with its series."""
        return {
            "series": {
                "count": self.series_count,
                "lastObservedTime": micro_time(self.last_observed),
            }
        }

    def key(self) -> tuple[object, ...]:
        """client-go's isomorphic key: everything but the note, name and times."""
        return (
            self.type,
            self.action,
            self.reason,
            self.controller,
            self.instance,
            self.regarding,
            self.related,
        )


def make_modern_event(
    *,
    regarding: InvolvedObject,
    related: InvolvedObject | None,
    type: str,
    reason: str,
    action: str,
    note: str,
    controller: str,
    host: str,
    now: float,
    name: str,
) -> ModernEvent:
    """A new Event, validated and truncated as the apiserver's strict validation requires."""
    if type not in EVENT_TYPES:
        raise InvalidEvent(f"type {type!r} is not Normal or Warning")
    if not reason or len(reason) > REASON_LIMIT:
        raise InvalidEvent(f"reason must be 1 to {REASON_LIMIT} characters, got {len(reason)}")
    if not action or len(action) > ACTION_LIMIT:
        raise InvalidEvent(f"action must be 1 to {ACTION_LIMIT} characters, got {len(action)}")
    if not _QUALIFIED.fullmatch(controller) or len(controller.rpartition("/")[0]) > 253:
        raise InvalidEvent(
            f"reportingController {controller!r} is not a qualified name ([prefix/]name)"
        )
    if not regarding.kind or not regarding.name:
        raise InvalidEvent("the regarding object needs a kind and a name")
    return ModernEvent(
        name=name,
        namespace=regarding.namespace or "default",
        regarding=regarding,
        related=related,
        type=type,
        reason=reason,
        action=action,
        note=truncate_message(note),
        controller=controller,
        instance=reporting_instance(controller, host),
        event_time=now,
    )


@dataclass(slots=True)
class _Entry:
    event: ModernEvent
    #: The series count last written (0: only the create).
    written: int = 0
    #: When the series was last written (for the refresh).
    written_at: float = 0.0


@dataclass(frozen=True, slots=True)
class SeriesWrite:
    """Create `event` (when `create`), else PATCH its series (re-create on 404)."""

    event: ModernEvent
    create: bool


@dataclass(slots=True)
class SeriesCache:
    """client-go's isomorphic-event cache (see the module docstring). Not thread-safe."""

    finish_seconds: float = FINISH_SECONDS
    refresh_seconds: float = REFRESH_SECONDS
    size: int = 4096
    #: Least recently observed first (a dict re-inserted on use: an LRU with removal).
    _entries: dict[tuple[object, ...], _Entry] = field(init=False, default_factory=dict)

    def __len__(self) -> int:
        return len(self._entries)

    def observe(self, event: ModernEvent, now: float) -> SeriesWrite | None:
        """The write this occurrence calls for: a create, the count-2 PATCH, or None (later
        occurrences wait for the heartbeat)."""
        key = event.key()
        entries = self._entries
        entry = entries.pop(key, None)
        if entry is None:
            entries[key] = _Entry(event, 0, now)
            if len(entries) > self.size:
                del entries[next(iter(entries))]
            return SeriesWrite(event, create=True)
        entries[key] = entry
        known = entry.event
        entry.event = ModernEvent(
            known.name,
            known.namespace,
            known.regarding,
            known.related,
            known.type,
            known.reason,
            known.action,
            known.note,
            known.controller,
            known.instance,
            known.event_time,
            max(known.series_count, 1) + 1,
            now,
        )
        if entry.event.series_count == 2:
            return SeriesWrite(entry.event, create=False)
        return None

    def written(self, event: ModernEvent, now: float) -> None:
        """Note that `event`'s series count is stored (after a successful write)."""
        entry = self._entries.get(event.key())
        if entry is not None and entry.event.name == event.name:
            entry.written = max(entry.written, event.series_count)
            entry.written_at = now

    def due(self, now: float) -> list[SeriesWrite]:
        """The heartbeat: PATCHes of series to refresh or to close; closed series and quiet
        singletons are forgotten."""
        writes = []
        for key, entry in list(self._entries.items()):
            event = entry.event
            if not event.series_count:
                if now - event.event_time > self.finish_seconds:
                    del self._entries[key]
                continue
            if now - event.last_observed > self.finish_seconds:
                del self._entries[key]
                if entry.written < event.series_count:
                    writes.append(SeriesWrite(event, create=False))
            elif now - entry.written_at >= self.refresh_seconds:
                writes.append(SeriesWrite(event, create=False))
        return writes

    def pending(self) -> list[SeriesWrite]:
        """Every series whose count is ahead of what was written (for a shutdown)."""
        return [
            SeriesWrite(entry.event, create=False)
            for _, entry in list(self._entries.items())
            if entry.event.series_count > entry.written
        ]
