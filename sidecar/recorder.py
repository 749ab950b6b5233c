"""Turning `EventSpec`s into written Events: resolve, build, correlate, write with retries.

The one place where every Event's fate is decided and counted, shared by `replay` and the daemon
(which calls it from its poster thread). It blocks while it retries, as client-go's recorder does,
so it never runs on the event loop.

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

from prometheus_client import Counter

from sidecar.correlate import Correlator, Suppressed, Write
from sidecar.events import EventNamer, InvalidEvent, make_event
from sidecar.metrics import Metrics
from sidecar.model import (
    AlreadyWritten,
    DropCause,
    EventSpec,
    RecordOutcome,
    RetrySettings,
    Written,
)
from sidecar.sinks import NotFound, Refused, Sink, Unreachable

log = logging.getLogger(__name__)
_DEFAULT_RETRY = RetrySettings()


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
        self._emitted: dict[tuple[str, str, str], Counter] = {}

    def record(self, spec: EventSpec) -> RecordOutcome:
        """Write the Event `spec` calls for; return what happened (a label, for logs and tests):
        `create`, `patch`, `already_written`, or the drop cause."""
        involved = self.sink.resolve(spec.target)
        line_time = spec.time
        now = self.clock() if line_time is None else min(line_time, self._wall_clock())
        try:
            event = make_event(
                involved=involved,
                type=spec.type,
                reason=spec.reason,
                message=spec.message,
                component=self.component,
                host=self.host,
                now=now,
                name=self.namer(involved.name),
            )
        except InvalidEvent as error:
            log.warning("dropping an invalid Event from rule %s: %s", spec.rule, error)
            return self._drop("invalid")
        decision = self.correlator.correlate(event)
        if type(decision) is Suppressed:
            return self._drop(decision.cause)
        assert type(decision) is Write
        if decision.aggregated:
            self.metrics.events_aggregated.labels(spec.reason).inc()
        return self._write(decision)

    def _write(self, decision: Write) -> RecordOutcome:
        """Write with retries; a create answered 409 is `already_written` (see `model`): the
        correlator keeps the Event as written, so later repeats PATCH it."""
        event = decision.event
        for attempt in range(1, self.retry.max_tries + 1):
            try:
                written = self._write_once(decision)
            except Unreachable as error:
                log.warning(
                    "cannot reach the API for Event %s/%s (try %d of %d): %s",
                    event.namespace,
                    event.name,
                    attempt,
                    self.retry.max_tries,
                    error,
                )
                if attempt < self.retry.max_tries:
                    factor = self._jitter() if attempt == 1 else 1.0
                    self._sleep(self.retry.interval_seconds * factor)
                continue
            except Refused as error:
                log.warning("the API refused Event %s/%s: %s", event.namespace, event.name, error)
                # A create never answers `event_missing`; a PATCH's is handled in `_write_once`.
                cause = error.cause
                return self._drop("rejected" if cause == "event_missing" else cause)
            if written == "already_written":
                self.metrics.events_already_written.inc()
            else:
                self._count_emitted(event.reason, event.type, written)
            return written
        return self._drop("retries_exhausted")

    def _write_once(self, decision: Write) -> Written | AlreadyWritten:
        if decision.patch is not None:
            try:
                self.sink.patch(decision.event, decision.patch)
            except NotFound:
                # The Event expired (--event-ttl); client-go re-creates it under the same name
                # with the cumulative count.
                pass
            else:
                return "patch"
        try:
            self.sink.create(decision.event)
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
        self.metrics.events_dropped.labels(cause).inc()
        return cause
