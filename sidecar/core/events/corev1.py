"""core/v1 Event objects exactly as client-go's EventRecorder writes them.

Only the legacy fields are set: setting `eventTime` would switch the apiserver to the strict
events.k8s.io validation (`action`, a qualified `reportingController`, ...), which client-go's
`tools/record` never does.
"""

from __future__ import annotations

import functools
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

REASON_LIMIT: Final = 128
#: The apiserver's limit is `len(message)` in Go, which counts bytes; staying under it in bytes
#: also keeps us under any limit counted in characters.
MESSAGE_LIMIT_BYTES: Final = 1024
NAME_LIMIT: Final = 253
EVENT_TYPES: Final = frozenset({"Normal", "Warning"})
#: Characters that fit MESSAGE_LIMIT_BYTES whatever they are (UTF-8 takes at most 4 bytes for
#: one; a lone surrogate, encoded as "?", takes 1): most messages, which need no encoding.
_SURELY_SHORT: Final = MESSAGE_LIMIT_BYTES // 4
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


class InvalidEvent(ValueError):
    """An Event the apiserver would refuse; raised before anything is sent."""


# Not frozen: built per line (or per Event), where a frozen dataclass costs several times more
# (its __init__ goes through object.__setattr__). Immutable by convention: nothing assigns to it,
# which is what makes `unsafe_hash` safe (it is a key in maps, as the frozen one was).
@dataclass(slots=True, unsafe_hash=True)
class InvolvedObject:
    kind: str
    name: str
    namespace: str = ""
    api_version: str = ""
    uid: str = ""
    resource_version: str = ""
    field_path: str = ""

    def to_body(self) -> dict[str, str]:
        body = {"kind": self.kind, "name": self.name}
        for key, value in (
            ("namespace", self.namespace),
            ("apiVersion", self.api_version),
            ("uid", self.uid),
            ("resourceVersion", self.resource_version),
            ("fieldPath", self.field_path),
        ):
            if value:
                body[key] = value
        return body


# Not frozen: built per line (or per Event), where a frozen dataclass costs several times more
# (its __init__ goes through object.__setattr__). Immutable by convention: nothing assigns to it,
# which is what makes `unsafe_hash` safe (it is a key in maps, as the frozen one was).
@dataclass(slots=True, unsafe_hash=True)
class Event:
    """One core/v1 Event as it is (or will be) stored."""

    name: str
    namespace: str
    involved: InvolvedObject
    type: str
    reason: str
    message: str
    #: Seconds since the epoch; rendered as RFC 3339 in whole seconds.
    first_timestamp: float
    last_timestamp: float
    count: int
    component: str
    host: str

    def to_body(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "involvedObject": self.involved.to_body(),
            "reason": self.reason,
            "message": self.message,
            "type": self.type,
            "count": self.count,
            "firstTimestamp": rfc3339(self.first_timestamp),
            "lastTimestamp": rfc3339(self.last_timestamp),
            "source": _source(self.component, self.host),
            "reportingComponent": self.component,
            "reportingInstance": self.host,
        }

    def repeat_patch(self) -> dict[str, Any]:
        """The strategic-merge patch client-go sends for a repeat: count, lastTimestamp, message."""
        return {
            "count": self.count,
            "lastTimestamp": rfc3339(self.last_timestamp),
            "message": self.message,
        }

    def named(self, name: str) -> Event:
        """This Event under `name` (the correlator names an Event made unnamed)."""
        return Event(
            name,
            self.namespace,
            self.involved,
            self.type,
            self.reason,
            self.message,
            self.first_timestamp,
            self.last_timestamp,
            self.count,
            self.component,
            self.host,
        )


def _source(component: str, host: str) -> dict[str, str]:
    return {"component": component, "host": host} if host else {"component": component}


def rfc3339(seconds: float) -> str:
    """metav1.Time's wire form: UTC, whole seconds, `Z`."""
    return _rfc3339(int(seconds))


@functools.lru_cache(maxsize=256)
def _rfc3339(seconds: int) -> str:
    # Cached: a burst of Events shares a handful of seconds, and strftime is the costly part.
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def truncate_message(message: str) -> str:
    """Cut to MESSAGE_LIMIT_BYTES of UTF-8 without splitting a character."""
    if len(message) <= _SURELY_SHORT:
        return message
    encoded = message.encode("utf-8", "replace")
    if len(encoded) <= MESSAGE_LIMIT_BYTES:
        return message
    return encoded[:MESSAGE_LIMIT_BYTES].decode("utf-8", "ignore")


def event_namespace(involved: InvolvedObject) -> str:
    """Events live in their object's namespace; those of cluster-scoped objects in `default`."""
    return involved.namespace or "default"


class EventNamer:
    """`<object name>.<hex unix nanoseconds>`, as client-go; a UUID4 when that is not a valid name.

    The nanoseconds come from `clock_ns` but never repeat, so two Events about one object in the
    same clock tick (or a replay whose clock is the log's time) cannot collide with 409.
    """

    def __init__(
        self,
        clock_ns: Callable[[], int] = time.time_ns,
        make_uuid: Callable[[], uuid.UUID] = uuid.uuid4,
    ) -> None:
        self._clock_ns = clock_ns
        self._make_uuid = make_uuid
        self._last = 0

    def __call__(self, object_name: str) -> str:
        nanos = max(self._clock_ns(), self._last + 1)
        self._last = nanos
        return self.name_for(object_name, nanos, self._make_uuid)

    def skip(self, names: int = 1) -> None:
        """Advance as drawing `names` names would, without making them.

        client-go names every Event it makes, and the correlator draws a name for each: it
        skips the ones it does not use (a repeat keeps its Event's name; a dropped Event needs
        none), so later names are the same as if each had been made.
        """
        last, clock_ns = self._last, self._clock_ns
        for _ in range(names):
            last = max(clock_ns(), last + 1)
        self._last = last

    @staticmethod
    def name_for(object_name: str, suffix: int, fallback: Callable[[], uuid.UUID]) -> str:
        """`<object name>.<hex suffix>`, or the fallback UUID when that is not a valid name."""
        name = f"{object_name}.{suffix:x}"
        if len(name) <= NAME_LIMIT and _DNS1123_SUBDOMAIN.fullmatch(name):
            return name
        return str(fallback())


def check_event(involved: InvolvedObject, type: str, reason: str) -> None:
    """Raise `InvalidEvent` when the apiserver would refuse an Event of this object, type and
    reason (the checks of `make_event`, for a caller that decides before making the Event)."""
    if type not in EVENT_TYPES:
        raise InvalidEvent(f"type {type!r} is not Normal or Warning")
    if not reason or len(reason) > REASON_LIMIT:
        raise InvalidEvent(f"reason must be 1 to {REASON_LIMIT} characters, got {len(reason)}")
    if not involved.kind or not involved.name:
        raise InvalidEvent("the involved object needs a kind and a name")


def make_event(
    *,
    involved: InvolvedObject,
    type: str,
    reason: str,
    message: str,
    component: str,
    host: str,
    now: float,
    name: str,
) -> Event:
    """A new Event (count 1), validated and truncated as the apiserver requires."""
    check_event(involved, type, reason)
    return Event(
        name=name,
        namespace=event_namespace(involved),
        involved=involved,
        type=type,
        reason=reason,
        message=truncate_message(message),
        first_timestamp=now,
        last_timestamp=now,
        count=1,
        component=component,
        host=host,
    )
