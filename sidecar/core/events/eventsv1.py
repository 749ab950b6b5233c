"""events.k8s.io/v1 Events and their series, as client-go's `tools/events` recorder writes them.

The body (`ModernEvent.to_body`) is `makeEvent`'s: `eventTime` in microseconds, `regarding`,
optional `related`, `action`, `note`, `reportingController`, `reportingInstance`, `type`,
`reason`, and none of the legacy fields (the apiserver refuses `count`, `firstTimestamp`,
`lastTimestamp` and `source` on this API).

The series (`SeriesCache`: client-go's isomorphic-event cache, and how a checkpoint carries it)
are `sidecar.core.events.series`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sidecar.core.events.corev1 import (
    EVENT_TYPES,
    REASON_LIMIT,
    Event,
    InvalidEvent,
    InvolvedObject,
    truncate_message,
)

API_VERSION: Final = "events.k8s.io/v1"
#: The apiserver's `ReportingInstanceLengthLimit` and `ActionLengthLimit`.
INSTANCE_LIMIT: Final = 128
ACTION_LIMIT: Final = 128
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
        """client-go's isomorphic key: everything but the note, name and times; the objects
        without their resourceVersion (see the module docstring)."""
        return (
            self.type,
            self.action,
            self.reason,
            self.controller,
            self.instance,
            _reference_key(self.regarding),
            None if self.related is None else _reference_key(self.related),
        )


def _reference_key(reference: InvolvedObject) -> tuple[str, ...]:
    return (
        reference.kind,
        reference.name,
        reference.namespace,
        reference.api_version,
        reference.uid,
        reference.field_path,
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


def as_core_view(event: ModernEvent) -> Event:
    """`event` as the core/v1 API shows it (what `kubectl get events` lists): the note as the
    message, the series' count and lastObservedTime as count and lastTimestamp, the reporting
    controller and instance as the source. For `replay`'s table."""
    return Event(
        event.name,
        event.namespace,
        event.regarding,
        event.type,
        event.reason,
        event.note,
        event.event_time,
        event.last_observed if event.series_count else event.event_time,
        max(event.series_count, 1),
        event.controller,
        event.instance,
    )
