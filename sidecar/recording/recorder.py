"""Turning `EventSpec`s into written Events: resolve, correlate, build, write with retries.

The one place where every Event's fate is decided and counted, shared by `replay` and the daemon.
`record` is `prepare` (resolve, correlate, build what is written: in the lines' order) then `write`,
which blocks while it retries, as client-go's recorder does (`replay`, tests). The daemon's poster
calls `plan` (`prepare`'s writes, zero or more: a subclass may decide several, or none; with the
objects resolved already, so nothing waits) and `tick` (writes not tied to a line, such as a
series heartbeat) in queue order, and makes the writes several at once, one object's in order
(`write_key`), all on its event loop.

How to write is decided apart from doing it: `write_steps` is a generator that yields each
request (`Send`) and each wait (`Pause`) and is told, by an exception thrown in, when a request
failed. `write` drives it with the sink's blocking calls and `sleep` (`drive_blocking`); the
poster drives the same steps with `await` (`drive_async`; both in `sidecar.recording.steps`).
So the retry, 409 and rate-limit rules exist once, whatever does the I/O.

A 429 is honoured two ways. With Retry-After (API Priority and Fairness) the write sleeps that
long (at most `retry_after_max_seconds`) and tries again. Without it (the `EventRateLimit`
admission plugin, whose limits are per namespace and per source and object) the object backs off
(doubling, with jitter): while it does, its Normal Events are dropped (`rate_limited`) and its
Warnings wait and are tried again, so the budget goes to what matters. Every wait is counted in
`events_delayed{cause}`, every drop in `events_dropped{cause}`.

What else is tried again, as client-go does (`sidecar.kube.errors` says which answers): no
answer (`Unreachable`: `retry.interval_seconds` apart, the first wait a random part of it), a 5xx
with Retry-After (`Unavailable`: an apiserver shutting down; that long), and a 403 soon after the
API was out of reach (`NotYetAllowed`: an apiserver's RBAC caches still filling; as no answer).
All of them take from the same `retry.max_tries`; when they run out, the last failure names the
drop: `rate_limited` after a 429, `forbidden` after a 403, else `retries_exhausted`.

An Event's time (firstTimestamp, lastTimestamp, and the correlator's clock) is its line's time,
clamped to the wall clock when the line claims the future; a line without a time gets `clock()`
(the wall clock in `run`, the last line's time in `replay`). So a backlog read after downtime
shows when things happened, and a line read twice yields the same Event both times.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from prometheus_client import Counter

from sidecar.core.correlate import Correlator, Suppressed, Write
from sidecar.core.events.corev1 import (
    Event,
    EventNamer,
    InvalidEvent,
    InvolvedObject,
    check_event,
    event_namespace,
    make_event,
    truncate_message,
)
from sidecar.core.events.series import SeriesRecord, SeriesWrite
from sidecar.model import (
    AlreadyWritten,
    DelayCause,
    DropCause,
    EventSpec,
    RecordOutcome,
    RetrySettings,
    Written,
)
from sidecar.recording.steps import Pause, Steps, drive_blocking
from sidecar.runtime.metrics import Metrics
from sidecar.runtime.sinks import (
    NotFound,
    NotYetAllowed,
    Refused,
    Send,
    Sink,
    Throttled,
    Unavailable,
    Unreachable,
)

log = logging.getLogger(__name__)
_DEFAULT_RETRY = RetrySettings()
#: Objects in back-off remembered before the expired ones are forgotten.
_BACKOFF_KEYS = 4096

ObjectKey = tuple[str, str, str, str]
#: A write decided by `plan` or `tick`, made by `write`: a core/v1 `Write`, or a series write.
Planned = Write | SeriesWrite
#: What `tick` is asked for: the heartbeat's due writes, or every count not written (shutdown).
TickKind = Literal["due", "pending"]


def object_key(event: Event) -> ObjectKey:
    """The object an Event is about, as `EventRateLimit` counts it (and the poster orders
    writes): the Event's namespace and its involved object's kind, namespace and name."""
    involved = event.involved
    return (event.namespace, involved.kind, involved.namespace, involved.name)


def _transient(error: Unreachable) -> tuple[DropCause, str, DelayCause]:
    """For a try worth another: the drop cause should no try be left, how to log it, and what
    the wait before the next try is counted as."""
    if isinstance(error, Unavailable):  # a 5xx with Retry-After: an apiserver shutting down
        return "retries_exhausted", "the API is unavailable for", "unavailable"
    if isinstance(error, NotYetAllowed):  # a 403 soon after the API was out of reach
        return "forbidden", "the API refused for now", "forbidden_transient"
    return "retries_exhausted", "cannot reach the API for", "unreachable"


@dataclass(slots=True)
class _Backoff:
    """An object the `EventRateLimit` plugin refused: how often in a row, and until when."""

    refusals: int
    until: float


class Recorder:
    def __init__(
        self,
        *,
        sink: Sink,
        correlator: Correlator,
        namer: EventNamer,
        metrics: Metrics,
        component: str,
        host: str,
        clock: Callable[[], float],
        retry: RetrySettings = _DEFAULT_RETRY,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sink = sink
        self.correlator = correlator
        self.namer = namer
        self.metrics = metrics
        self.component = component
        self.host = host
        self.clock = clock
        self.retry = retry
        self._sleep = sleep
        self._jitter = jitter
        self._wall_clock = wall_clock
        self._monotonic = monotonic
        self._emitted: dict[tuple[str, str, str], Counter] = {}
        #: Objects backing off after a 429 without Retry-After. Each key is only touched by the
        #: writes of its object, which never overlap (the poster chains them).
        self._backoff: dict[ObjectKey, _Backoff] = {}

    def record(self, spec: EventSpec) -> RecordOutcome:
        """Write the Event `spec` calls for; return what happened (a label, for logs and tests):
        `create`, `patch`, `already_written`, or the drop cause."""
        decision = self.prepare(spec)
        if isinstance(decision, Write):
            return self.write(decision)
        return decision

    def plan(
        self,
        spec: EventSpec,
        involved: InvolvedObject | None = None,
        related: InvolvedObject | None = None,
    ) -> tuple[Planned, ...] | RecordOutcome:
        """`prepare` for the poster: the writes `spec` calls for (none is returned as the
        outcome, counted), decided in the lines' order. `involved` (and `related`, the second
        object a rule may name: core/v1 Events do not carry it) resolved already, nothing here
        waits for the API."""
        decision = self.prepare(spec, involved)
        return (decision,) if isinstance(decision, Write) else decision

    def tick(self, kind: TickKind) -> tuple[Planned, ...]:
        """Writes not tied to a line (a series heartbeat, a shutdown's last counts); core/v1
        has none."""
        return ()

    def export_series(self) -> tuple[SeriesRecord, ...]:
        """The series state a checkpoint carries with the correlator's; core/v1 has none."""
        return ()

    def write_key(self, decision: Planned) -> ObjectKey:
        """The object `decision` is about: its writes are made in order, one at a time."""
        assert type(decision) is Write
        return object_key(decision.event)

    def prepare(self, spec: EventSpec, involved: InvolvedObject | None = None) -> Write | DropCause:
        """Resolve and correlate the Event `spec` calls for, built only when it is written: the
        `Write` to make, or the (counted) drop cause. Calls must come in the order of the lines:
        correlation counts. `involved` is the target already resolved (the poster looks objects
        up ahead)."""
        if involved is None:
            involved = self.sink.resolve(spec.target)
        event_type, reason = spec.type, spec.reason
        try:
            check_event(involved, event_type, reason)
        except InvalidEvent as error:
            log.warning("dropping an invalid Event from rule %s: %s", spec.rule, error)
            return self._drop("invalid")
        # Decided before the Event is made (`Correlator.decide`: the Event `build_event` would
        # make, unnamed: the correlator names it only when it starts a new Event): under a
        # flood the spam filter drops most, and nothing is built for them.
        decision = self.correlator.decide(
            self.component,
            self.host,
            involved,
            event_type,
            reason,
            truncate_message(spec.message),
            self.event_time(spec),
            event_namespace(involved),
        )
        if decision is None:
            return self._drop("spam_filter")
        if decision.aggregated:
            self.metrics.child(self.metrics.events_aggregated, reason).inc()
        return decision

    def correlate(self, event: Event, reason: str) -> Write | DropCause:
        """The correlator's decision on `event`: the `Write` to make, or the counted drop."""
        decision = self.correlator.correlate(event)
        if type(decision) is Suppressed:
            return self._drop(decision.cause)
        assert type(decision) is Write
        if decision.aggregated:
            self.metrics.child(self.metrics.events_aggregated, reason).inc()
        return decision

    def event_time(self, spec: EventSpec) -> float:
        """When the Event happened: its line's time, never ahead of the wall clock; the clock's
        for a line without one."""
        line_time = spec.time
        return self.clock() if line_time is None else min(line_time, self._wall_clock())

    def build_event(
        self, spec: EventSpec, involved: InvolvedObject, now: float, *, named: bool = True
    ) -> Event:
        """The core/v1 Event `spec` calls for (also what the aggregator and the spam filter
        judge in events.k8s.io/v1 mode). Raises `InvalidEvent`. Not `named`, it is left for the
        correlator to name, only if it starts a new Event."""
        return make_event(
            involved=involved,
            type=spec.type,
            reason=spec.reason,
            message=spec.message,
            component=self.component,
            host=self.host,
            now=now,
            name=self.namer(involved.name) if named else "",
        )

    def write(self, decision: Planned) -> RecordOutcome:
        """Make `write_steps(decision)` with the sink's blocking calls. Writes about one object
        must not overlap (its back-off state is theirs); others may."""
        return drive_blocking(self.write_steps(decision), self.sink, self._sleep)

    def write_steps(self, decision: Planned) -> Steps[RecordOutcome]:
        """The steps of one decided write, with retries; a create answered 409 is
        `already_written` (see `model`): the correlator keeps the Event as written, so later
        repeats PATCH it."""
        assert type(decision) is Write
        event = decision.event
        written = yield from self.write_with_retries(
            (event.namespace, event.name),
            object_key(event),
            warning=event.type == "Warning",
            attempt=lambda: self._write_once(decision),
        )
        if written == "already_written":
            self.metrics.events_already_written.inc()
        elif written in ("create", "patch"):
            self._count_emitted(event.reason, event.type, written)
        return written

    def write_with_retries(
        self,
        event: tuple[str, str],
        key: ObjectKey,
        *,
        warning: bool,
        attempt: Callable[[], Steps[Written | AlreadyWritten]],
    ) -> Steps[Written | AlreadyWritten | DropCause]:
        """The steps of one write (`attempt`) for the Event named `event` (namespace, name)
        about the object `key`, as client-go retries it plus the rate-limit handling (see the
        module docstring): transport errors, a 5xx with Retry-After and a 403 soon after the API
        was out of reach are retried, `retry.max_tries` tries in all; a 429 with Retry-After
        waits that long; one without it (EventRateLimit) backs the object off, dropping a Normal
        Event and delaying a Warning; every other refusal is a counted drop."""
        namespace, name = event
        waited = yield from self._wait_backoff(key, warning)
        if waited is not None:
            return waited
        #: What to count if the tries run out: named after the last failure.
        exhausted: DropCause = "retries_exhausted"
        for tries in range(1, self.retry.max_tries + 1):
            last_try = tries == self.retry.max_tries
            try:
                written = yield from attempt()
            except Throttled as error:
                exhausted = "rate_limited"
                if error.retry_after is not None:
                    wait = min(error.retry_after, self.retry.retry_after_max_seconds)
                    yield self._delay("retry_after", wait)
                    continue
                wait = self._back_off(key)
                log.info(
                    "the API rate-limits Events about %s/%s (%s): %s",
                    key[2],
                    key[3],
                    key[1],
                    error,
                )
                if not warning:
                    return self._drop("rate_limited")
                yield self._delay("rate_limited", wait)
                continue
            except Unreachable as error:  # no answer, or one worth another try
                exhausted, what, delay = _transient(error)
                log.warning(
                    "%s Event %s/%s (try %d of %d): %s",
                    what,
                    namespace,
                    name,
                    tries,
                    self.retry.max_tries,
                    error,
                )
                if not last_try:
                    wait = (
                        min(error.retry_after, self.retry.retry_after_max_seconds)
                        if isinstance(error, Unavailable)
                        else self._retry_interval(tries)
                    )
                    yield self._delay(delay, wait)
                continue
            except Refused as error:
                log.warning("the API refused Event %s/%s: %s", namespace, name, error)
                # A create never answers `event_missing`; a PATCH's is handled by `attempt`.
                cause = error.cause
                return self._drop("rejected" if cause == "event_missing" else cause)
            self._backoff.pop(key, None)
            return written
        return self._drop(exhausted)

    def _retry_interval(self, tries: int) -> float:
        """The wait after failed try number `tries`: the first a random part of the interval,
        so that many clients do not retry in step after an apiserver outage."""
        factor = self._jitter() if tries == 1 else 1.0
        return self.retry.interval_seconds * factor

    def _wait_backoff(self, key: ObjectKey, warning: bool) -> Steps[DropCause | None]:
        """While `key` backs off, drop a Normal Event (`rate_limited`), make a Warning wait."""
        backoff = self._backoff.get(key)
        if backoff is None:
            return None
        left = backoff.until - self._monotonic()
        if left <= 0:
            return None
        if not warning:
            return self._drop("rate_limited")
        yield self._delay("rate_limited", left)
        return None

    def _back_off(self, key: ObjectKey) -> float:
        """Start or lengthen `key`'s back-off; return how long it lasts (jittered)."""
        backoff = self._backoff.get(key)
        refusals = 1 if backoff is None else backoff.refusals + 1
        doubled: float = self.retry.backoff_seconds * 2.0 ** min(refusals - 1, 30)
        ceiling = min(doubled, self.retry.backoff_max_seconds)
        wait = ceiling * (0.5 + 0.5 * self._jitter())
        now = self._monotonic()
        if backoff is None and len(self._backoff) >= _BACKOFF_KEYS:
            self._forget_expired(now)
        self._backoff[key] = _Backoff(refusals, now + wait)
        return wait

    def _forget_expired(self, now: float) -> None:
        for stale in [k for k, b in list(self._backoff.items()) if b.until <= now]:
            self._backoff.pop(stale, None)

    def _delay(self, cause: DelayCause, seconds: float) -> Pause:
        """Count a wait for `cause`; the `Pause` to yield."""
        self.metrics.child(self.metrics.events_delayed, cause).inc()
        return Pause(seconds)

    def _write_once(self, decision: Write) -> Steps[Written | AlreadyWritten]:
        if decision.patch is not None:
            try:
                yield Send(decision.event, decision.patch)
            except NotFound:
                # The Event expired (--event-ttl); client-go re-creates it under the same name
                # with the cumulative count.
                pass
            else:
                return "patch"
        try:
            yield Send(decision.event)
        except Refused as error:
            if error.cause == "conflict":
                return "already_written"
            raise
        return "create"

    def _count_emitted(self, reason: str, type_: str, write: Written) -> None:
        # Label look-ups cost more than the increment; reasons are few, so keep the children.
        key = (reason, type_, write)
        child = self._emitted.get(key)
        if child is None:
            child = self._emitted[key] = self.metrics.events_emitted.labels(*key)
        child.inc()

    def _drop(self, cause: DropCause) -> DropCause:
        self.metrics.child(self.metrics.events_dropped, cause).inc()
        return cause
