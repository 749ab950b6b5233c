"""`ModernRecorder`: the `Recorder` for events.k8s.io/v1, with client-go's series.

Our correlation stays in front, unchanged: the aggregator and the spam filter decide (and count)
exactly as in core/v1 mode, although client-go's `tools/events` recorder has neither. What passes
goes to the `SeriesCache` (`sidecar.core.events.eventsv1`): a new isomorphic Event is created, its
second occurrence PATCHes `series{count: 2}`, later ones are counted in memory
(`events_emitted{write= "series"}`) and written by the heartbeat (`tick("due")`: every live series
on the refresh period, and a final PATCH when one has been quiet for the finish period) and at
shutdown (`tick("pending")`).

Deciding and writing are apart, as in `Recorder`: `plan` and `tick` decide (the cache's state
changes only there, in the lines' order) and `write_steps` makes one decided write, each
object's in order. So the daemon writes several Events at once in this mode too, and a checkpoint
taken between two decisions (`export_series`) and committed once the writes decided before it
ended holds exactly what the API has and what is only in memory.
"""

from __future__ import annotations

import logging
from typing import Any

from sidecar.core.events.corev1 import InvalidEvent, InvolvedObject
from sidecar.core.events.eventsv1 import ModernEvent, make_modern_event
from sidecar.core.events.series import SeriesCache, SeriesRecord, SeriesWrite
from sidecar.model import AlreadyWritten, EventSpec, RecordOutcome, Written
from sidecar.recording.recorder import ObjectKey, Planned, Recorder, TickKind
from sidecar.recording.steps import Steps
from sidecar.runtime.sinks import NotFound, Refused, Send

log = logging.getLogger(__name__)


class ModernRecorder(Recorder):
    """A `Recorder` (same constructor, plus the `series` cache) writing events.k8s.io/v1."""

    def __init__(self, *, series: SeriesCache, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.series = series

    def record(self, spec: EventSpec) -> RecordOutcome:
        """Like `Recorder.record`; `series` when the occurrence only raised a series' count in
        memory (the heartbeat writes it). Returns the outcome of the occurrence's own write."""
        planned = self.plan(spec)
        if isinstance(planned, str):
            return planned
        outcome: RecordOutcome = "series"
        for write in planned:
            written = self.write(write)
            if isinstance(write, SeriesWrite) and write.occurrence:
                outcome = written
        return outcome

    def plan(
        self,
        spec: EventSpec,
        involved: InvolvedObject | None = None,
        related: InvolvedObject | None = None,
    ) -> tuple[Planned, ...] | RecordOutcome:
        """Resolve (unless given), build, correlate and observe the occurrence `spec` stands
        for: the series writes it calls for, or `series` (counted in memory) or the drop
        cause."""
        regarding = involved if involved is not None else self.sink.resolve(spec.target)
        if related is None and spec.related is not None:
            related = self.sink.resolve(spec.related)
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
        if isinstance(decision, str):
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
        writes = self.series.observe(modern, now)
        if not any(write.occurrence for write in writes):
            self.metrics.events_emitted.labels(spec.reason, spec.type, "series").inc()
        return tuple(writes) if writes else "series"

    def tick(self, kind: TickKind) -> tuple[Planned, ...]:
        """`due`: client-go's refresh and finish, on the wall clock; `pending`: every series
        count not written yet (a shutdown)."""
        now = self.clock()
        return tuple(self.series.due(now) if kind == "due" else self.series.pending(now))

    def export_series(self) -> tuple[SeriesRecord, ...]:
        return self.series.export()

    def heartbeat(self) -> int:
        """`tick("due")` and its writes, one after the other; how many (replay, tests)."""
        return self._write_all(self.tick("due"))

    def flush(self) -> int:
        """`tick("pending")` and its writes, one after the other; how many (replay, tests)."""
        return self._write_all(self.tick("pending"))

    def _write_all(self, writes: tuple[Planned, ...]) -> int:
        for write in writes:
            self.write(write)
        return len(writes)

    def write_key(self, decision: Planned) -> ObjectKey:
        assert isinstance(decision, SeriesWrite)
        event = decision.event
        regarding = event.regarding
        return (event.namespace, regarding.kind, regarding.namespace, regarding.name)

    def write_steps(self, decision: Planned) -> Steps[RecordOutcome]:
        """One decided write with the Recorder's retries and rate-limit handling; a drop is
        counted, and so is an occurrence's create or PATCH."""
        assert isinstance(decision, SeriesWrite)
        event = decision.event
        written = yield from self.write_with_retries(
            (event.namespace, event.name),
            self.write_key(decision),
            warning=event.type == "Warning",
            attempt=lambda: self._write_once_modern(decision),
        )
        if written == "already_written":
            self.metrics.events_already_written.inc()
        elif decision.occurrence and (written == "create" or written == "patch"):  # noqa: PLR1714 - narrows for mypy
            self._count_emitted(event.reason, event.type, written)
        return written

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

    def _write_once_modern(self, write: SeriesWrite) -> Steps[Written | AlreadyWritten]:
        event = write.event
        if not write.create:
            try:
                yield Send(event, event.series_patch())
            except NotFound:
                # Expired (--event-ttl): client-go re-creates it, series included.
                pass
            else:
                return "patch"
        try:
            yield Send(event)
        except Refused as error:
            # A line-derived name already taken: written before (a line read again).
            if error.cause == "conflict" and write.create:
                return "already_written"
            raise
        return "create"
