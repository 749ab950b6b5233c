"""`ModernRecorder`: the `Recorder` for events.k8s.io/v1, with client-go's series.

Our correlation stays in front, unchanged: the aggregator and the spam filter decide (and count)
exactly as in core/v1 mode, although client-go's `tools/events` recorder has neither. What passes
goes to the `SeriesCache` (`sidecar.events_v1`): a new isomorphic Event is created, its second
occurrence PATCHes `series{count: 2}`, later ones are counted in memory (`events_emitted{write=
"series"}`) and written by `heartbeat` (every live series on the refresh period, and a final
PATCH when one has been quiet for the finish period) and by `flush` at shutdown.

`record` and `heartbeat` run on different threads (the poster's, and the daemon's heartbeat
task's), so one lock serialises them: two PATCHes of one series never cross.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, ClassVar, Protocol

from sidecar.correlate import Write
from sidecar.events import InvalidEvent, InvolvedObject
from sidecar.events_v1 import ModernEvent, SeriesCache, SeriesWrite, make_modern_event
from sidecar.model import AlreadyWritten, EventSpec, RecordOutcome, Written
from sidecar.recorder import Recorder
from sidecar.sinks import NotFound, Refused

log = logging.getLogger(__name__)


class ModernSink(Protocol):
    """What a sink adds to write events.k8s.io/v1 Events (same errors as `Sink`)."""

    def create_modern(self, event: ModernEvent) -> None: ...

    def patch_modern(self, event: ModernEvent, patch: dict[str, Any]) -> None: ...


class ModernRecorder(Recorder):
    """A `Recorder` (same constructor, plus the `series` cache) writing events.k8s.io/v1."""

    #: Series writes are not split into `prepare` and `write` yet: written one at a time.
    concurrent_writes: ClassVar[bool] = False

    def __init__(self, *, series: SeriesCache, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.series = series
        self._lock = threading.Lock()
        sink: Any = self.sink
        self._modern: ModernSink = sink

    def record(self, spec: EventSpec) -> RecordOutcome:
        """Like `Recorder.record`; `series` when the occurrence only raised a series' count in
        memory (the heartbeat writes it)."""
        regarding = self.sink.resolve(spec.target)
        related = self.sink.resolve(spec.related) if spec.related is not None else None
        now = self.event_time(spec)
        try:
            # The core Event is what our aggregator and spam filter judge, as in core/v1 mode.
            event = self.build_event(spec, regarding, now)
            modern = self._modern_event(
                spec,
                regarding=regarding,
                related=related,
                note=event.message,
                now=now,
                name=event.name,
            )
        except InvalidEvent as error:
            log.warning("dropping an invalid Event from rule %s: %s", spec.rule, error)
            return self._drop("invalid")
        decision = self.correlate(event, spec.reason)
        if not isinstance(decision, Write):
            return decision
        if decision.aggregated:
            modern = self._modern_event(
                spec,
                regarding=regarding,
                related=related,
                note=decision.event.message,
                now=now,
                name=decision.event.name,
            )
        with self._lock:
            write = self.series.observe(modern, now)
            if write is None:
                self.metrics.events_emitted.labels(spec.reason, spec.type, "series").inc()
                return "series"
            outcome = self._write_series(write)
        if outcome == "create" or outcome == "patch":  # noqa: PLR1714 - narrows for mypy
            self._count_emitted(spec.reason, spec.type, outcome)
        elif outcome == "already_written":
            self.metrics.events_already_written.inc()
        return outcome

    def heartbeat(self) -> int:
        """client-go's refresh and finish: PATCH the series that are due; return how many."""
        with self._lock:
            writes = self.series.due(self.clock())
            for write in writes:
                self._write_series(write)
        return len(writes)

    def flush(self) -> int:
        """Write every series count not written yet (at shutdown); return how many."""
        with self._lock:
            writes = self.series.pending()
            for write in writes:
                self._write_series(write)
        return len(writes)

    def _modern_event(
        self,
        spec: EventSpec,
        *,
        regarding: InvolvedObject,
        related: InvolvedObject | None,
        note: str,
        now: float,
        name: str,
    ) -> ModernEvent:
        return make_modern_event(
            regarding=regarding,
            related=related,
            type=spec.type,
            reason=spec.reason,
            action=spec.action or spec.reason,
            note=note,
            controller=self.component,
            host=self.host,
            now=now,
            name=name,
        )

    def _write_series(self, write: SeriesWrite) -> RecordOutcome:
        """One write with the Recorder's retries and rate-limit handling; a drop is counted."""
        event = write.event
        regarding = event.regarding
        written = self.write_with_retries(
            (event.namespace, event.name),
            (event.namespace, regarding.kind, regarding.namespace, regarding.name),
            warning=event.type == "Warning",
            attempt=lambda: self._write_once_modern(write),
        )
        if written in ("create", "patch", "already_written"):
            self.series.written(event, self.clock())
        return written

    def _write_once_modern(self, write: SeriesWrite) -> Written | AlreadyWritten:
        event = write.event
        if not write.create:
            try:
                self._modern.patch_modern(event, event.series_patch())
            except NotFound:
                # Expired (--event-ttl): client-go re-creates it, series included.
                pass
            else:
                return "patch"
        try:
            self._modern.create_modern(event)
        except Refused as error:
            # A line-derived name already taken: written before (a line read again).
            if error.cause == "conflict" and write.create:
                return "already_written"
            raise
        return "create"
