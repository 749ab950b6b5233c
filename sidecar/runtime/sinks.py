"""Where Events go: the protocol every sink follows, its errors, and the in-memory sink.

Errors, in one hierarchy so callers catch the sink's meaning and never a library's exception:

- `SinkError`: base class.
  - `Unreachable`: the API could not be reached or did not answer (transport errors). The only
    error worth retrying, as in client-go.
    - `Throttled`: 429, with the Retry-After asked for, if any.
    - `Unavailable`: a 5xx with Retry-After (an apiserver shutting down): client-go's REST
      client waits that long and tries again.
    - `NotYetAllowed`: a 403 soon after the API was out of reach (or after the start): an
      apiserver that just started refuses until its RBAC caches are filled.
  - `Refused`: the API answered no; final. `cause` is a `model.RefusalCause`.
    - `NotFound`: 404. For a create the namespace is missing (`namespace_missing`); for a PATCH
      the Event expired or was deleted (`event_missing`), and the Recorder re-creates it.

Writes are requests (`Send`): the Recorder decides them without doing them, and a driver makes
them, on a `Sink` (blocking: `send_to`) or on a `Sender` (asyncio: the daemon's poster, which
also resolves objects through it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol, TypeVar

from sidecar.core.events.corev1 import Event, InvolvedObject
from sidecar.core.events.eventsv1 import ModernEvent
from sidecar.model import EventsApi, ObjectTarget, RefusalCause

#: What the memory sink stores: core/v1 or events.k8s.io/v1 Events.
_Stored = TypeVar("_Stored", Event, ModernEvent)


class SinkError(Exception):
    """Base of every error a sink raises."""


class Unreachable(SinkError):
    """The request may not have reached the API; retrying can help."""


class Throttled(Unreachable):
    """429: the API is shedding load. `retry_after` is the seconds it asked for, if any."""

    def __init__(self, detail: str, retry_after: float | None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class Unavailable(Unreachable):
    """A 5xx answered with Retry-After: `retry_after` seconds, then try again (client-go's REST
    client does so for any 5xx or 429 with the header; a shutting-down apiserver sends 503 with
    `Retry-After: 1`). A 5xx without it is final, as in client-go."""

    def __init__(self, detail: str, retry_after: float) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class NotYetAllowed(Unreachable):
    """A 403 the sink holds for transient: it came soon after the API was out of reach (or
    after the start), when an apiserver's RBAC caches may still be filling. Tried again; a
    403 once that time is over is `Refused("forbidden")`."""


class Refused(SinkError):
    def __init__(self, cause: RefusalCause, detail: str) -> None:
        super().__init__(f"{cause}: {detail}")
        self.cause = cause
        self.detail = detail


class NotFound(Refused):
    def __init__(self, cause: Literal["namespace_missing", "event_missing"], detail: str) -> None:
        super().__init__(cause, detail)


class Sink(Protocol):
    """Where Events are written, blocking; every capability a caller may use is declared here
    (the Kubernetes sink, `sidecar.kube.api_sink.KubeSink`, and `MemorySink` have them all)."""

    def resolve(self, target: ObjectTarget) -> InvolvedObject:
        """The involved object with what can be learnt about it (uid, resourceVersion,
        preferred apiVersion). Never raises: a failed look-up yields the reference as given."""
        ...

    def known(self, target: ObjectTarget) -> InvolvedObject | None:
        """What `resolve` would answer at once, without asking anything (a cached or local
        answer), or None when it would have to ask: the poster looks up ahead only those."""
        ...

    def create(self, event: Event) -> None: ...

    def patch(self, event: Event, patch: dict[str, Any]) -> None: ...

    def create_modern(self, event: ModernEvent) -> None:
        """Create an events.k8s.io/v1 Event."""
        ...

    def patch_modern(self, event: ModernEvent, patch: dict[str, Any]) -> None:
        """PATCH an events.k8s.io/v1 Event (its series)."""
        ...

    def ping(self) -> str:
        """Check the destination answers (for /readyz); raise `Unreachable` when it does not."""
        ...

    def sender(self, connections: int) -> Sender | None:
        """The sink's own `Sender` (the same writes and look-ups from the event loop, up to
        `connections` in flight), or None: then the poster makes the blocking calls on threads."""
        ...

    def choose_events_api(self, namespace: str | None = None) -> tuple[EventsApi, str]:
        """The Events API `--events-api auto` resolves to, and why (`namespace`: where to try
        it, by default the sidecar's own)."""
        ...


@dataclass(frozen=True, slots=True)
class Send:
    """One write: create `event`, or strategic-merge PATCH `patch` onto it. The API follows from
    the Event: an `Event` is core/v1, a `ModernEvent` events.k8s.io/v1."""

    event: Event | ModernEvent
    patch: dict[str, Any] | None = None


class Sender(Protocol):
    """Makes `Send`s from the event loop, with a `Sink`'s errors, and resolves objects there."""

    async def send(self, request: Send) -> None:
        """Raises:
        Unreachable: no answer (retry); `Throttled` for a 429.
        Refused: any other error answer (`NotFound` for a 404)."""
        ...

    async def resolve(self, target: ObjectTarget) -> InvolvedObject:
        """The sink's `resolve`, from the event loop. Never raises."""
        ...

    async def close(self) -> None: ...


def send_to(sink: Sink, request: Send) -> None:
    """Make `request` on a blocking `Sink`."""
    event = request.event
    if type(event) is Event:
        if request.patch is None:
            sink.create(event)
        else:
            sink.patch(event, request.patch)
        return
    assert type(event) is ModernEvent
    if request.patch is None:
        sink.create_modern(event)
    else:
        sink.patch_modern(event, request.patch)


def unresolved(target: ObjectTarget) -> InvolvedObject:
    """The reference exactly as the rules named it, without anything looked up."""
    return InvolvedObject(
        kind=target.kind,
        name=target.name,
        namespace=target.namespace,
        api_version=target.api_version,
        uid=target.uid,
        field_path=target.field_path,
    )


class MemorySink:
    """Keeps Events as an apiserver would store them: `replay` prints these, tests inspect them.

    With `keep`, only the `keep` most recently written Events are kept (`replay -o none` and
    `run --dry-run`, which print nothing, pass the correlator's cache size: the correlator patches
    no older Event) and `writes` stays empty, so that memory does not grow with the log. An Event
    forgotten that way answers a PATCH with `event_missing`, as an expired one does on the
    apiserver, and the Recorder creates it again.

    Writes may come from several threads at once (the daemon's poster makes `--writes` of them
    on its own threads), so each is made whole under one lock: two threads evicting the same
    oldest Event raised KeyError, and one reading the dict another changed, RuntimeError. A
    write is a few dict operations, so the lock is never held for long.
    """

    def __init__(
        self,
        api_versions: Mapping[str, str] | None = None,
        *,
        keep: int | None = None,
        why: str = "no cluster",
    ) -> None:
        if keep is not None and keep < 1:
            raise ValueError("a bounded memory sink keeps at least one Event")
        self.keep = keep
        #: Why Events are kept here rather than written (what `choose_events_api` says).
        self.why = why
        #: The version to print for a group the rules name without one (`object: auto` knows
        #: only controllerGroup), as discovery would answer: `replay --api-version`.
        self.api_versions: Mapping[str, str] = api_versions or {}
        self.events: dict[tuple[str, str], Event] = {}
        #: Every write in order, without `keep` (tests inspect it).
        self.writes: list[tuple[str, str]] = []
        #: The Event as stored after the last create or PATCH.
        self.last: Event | None = None
        #: events.k8s.io/v1 Events, as stored (bounded by `keep` as `events` is).
        self.modern: dict[tuple[str, str], ModernEvent] = {}
        #: Called with each create or PATCH ("create" or "patch") and the Event as stored after
        #: it (`replay -o writes`).
        self.on_write: Callable[[str, Event | ModernEvent], None] | None = None
        self._lock = threading.Lock()

    def known(self, target: ObjectTarget) -> InvolvedObject | None:
        return self.resolve(target)

    def resolve(self, target: ObjectTarget) -> InvolvedObject:
        involved = unresolved(target)
        group = target.api_group
        if not involved.api_version and group and group in self.api_versions:
            return replace(involved, api_version=f"{group}/{self.api_versions[group]}")
        return involved

    def ping(self) -> str:
        return "memory"

    def sender(self, connections: int) -> None:
        """None: its writes are a few dict operations, made on the poster's threads."""

    def choose_events_api(self, namespace: str | None = None) -> tuple[EventsApi, str]:
        """core/v1: without a cluster there is nothing to choose from."""
        return "v1", self.why

    def create(self, event: Event) -> None:
        key = (event.namespace, event.name)
        with self._lock:
            if key in self.events:
                raise Refused("conflict", f"events {event.name!r} already exists")
            self._store(self.events, key, event)
            self._note("create", event)
            self.last = event

    def patch(self, event: Event, patch: dict[str, Any]) -> None:
        key = (event.namespace, event.name)
        with self._lock:
            stored = self.events.get(key)
            if stored is None:
                raise NotFound("event_missing", f'events "{event.name}" not found')
            # Only what the strategic-merge patch names changes, as on the apiserver.
            patched = replace(
                stored,
                count=patch["count"],
                message=patch["message"],
                last_timestamp=event.last_timestamp,
            )
            self._store(self.events, key, patched)
            self.last = patched
            self._note("patch", patched)

    def _store(
        self, events: dict[tuple[str, str], _Stored], key: tuple[str, str], event: _Stored
    ) -> None:
        """Unbounded, in creation order (what `replay` prints); bounded, most recent last."""
        if self.keep is None:
            events[key] = event
            return
        events.pop(key, None)
        events[key] = event
        if len(events) > self.keep:
            del events[next(iter(events))]

    def _note(self, write: str, event: Event | ModernEvent) -> None:
        if self.keep is None:
            self.writes.append((write, event.name))
        if self.on_write is not None:
            self.on_write(write, event)

    def create_modern(self, event: ModernEvent) -> None:
        key = (event.namespace, event.name)
        with self._lock:
            if key in self.modern:
                raise Refused("conflict", f"events {event.name!r} already exists")
            self._store(self.modern, key, event)
            self._note("create", event)

    def patch_modern(self, event: ModernEvent, patch: dict[str, Any]) -> None:
        key = (event.namespace, event.name)
        with self._lock:
            stored = self.modern.get(key)
            if stored is None:
                raise NotFound("event_missing", f'events "{event.name}" not found')
            series = patch["series"]
            patched = replace(
                stored, series_count=series["count"], last_observed=event.last_observed
            )
            self._store(self.modern, key, patched)
            self._note("patch", patched)
