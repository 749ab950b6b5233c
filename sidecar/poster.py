"""The poster: one consumer of the Event queue, writing through the blocking `Recorder` on its own
thread, and the checkpoint commits that follow the writes.

The Recorder blocks while it retries (as client-go's does), so it runs on a dedicated daemon
thread, never on the event loop. It is a daemon thread so that a shutdown whose deadline passed is
not held up by a write still sleeping between retries.

What holds across a crash (`kill -9`), for the file source:
- No line is skipped: a file's offset is checkpointed only after the Events of the lines before it
  are recorded, so a crash can only make lines be read again.
- No occurrence is counted twice: the checkpoint also carries the correlator's state at that point
  (which Event each dedup or aggregation key PATCHes, at which count), so a repeat read again
  PATCHes the same Event to the same absolute count. A line read again whose Event was created
  after the checkpoint gets the same name (`LineNamer` derives it from the line's time and
  content), so its create answers 409: counted as `already_written`, not a drop, and the
  correlator keeps that Event for the repeats that follow.
- Not covered: lines without a time (their Events get wall-clock names, so one read again is
  written again), the spam filter's buckets (they restart full: a re-read line may be written
  where it was suppressed, with the right count), and Events from the socket source (not re-read).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

from sidecar.checkpoint import Checkpoint
from sidecar.events import EventNamer
from sidecar.metrics import Metrics
from sidecar.model import DropCause, EventSpec, RecordOutcome
from sidecar.recorder import Recorder
from sidecar.threads import WorkerThread

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Posting:
    """An Event to write, and when its line was read."""

    spec: EventSpec
    read_at: float


@dataclass(slots=True)
class Mark:
    """Everything queued before this is written once it is reached: `checkpoint` may be saved."""

    checkpoint: Checkpoint
    #: Set by the poster when it commits the mark; until then the decoder queues no other, so
    #: a stalled API holds one snapshot of the transition state in the queue, not hundreds.
    reached: bool = False


QueueItem = Posting | Mark


class LineNamer(EventNamer):
    """client-go's `<object>.<16 hex digits>` names, but derived from the line, not the clock.

    While `current` is set (by the poster, around one `record` call), the hex digits are a hash
    of the Event's source, object, field path, type, reason, message and the line's own time,
    so re-reading a line after a crash yields the same name (and the UUID fallback for names
    that are not valid is derived the same way). Lines without a time get wall-clock names, as
    in client-go.
    """

    def __init__(self, component: str, host: str) -> None:
        super().__init__()
        self._salt = f"{component}\0{host}"
        self.current: EventSpec | None = None

    def __call__(self, object_name: str) -> str:
        """The name for an Event about `object_name` (see the class docstring)."""
        spec = self.current
        if spec is None or spec.time is None:
            return super().__call__(object_name)
        target = spec.target
        # What makes two Events distinct for client-go's dedup (less the uid, resolved later),
        # plus the line's time: equal only for a line read again.
        key = "\0".join(
            (
                self._salt,
                target.api_version,
                target.kind,
                target.namespace,
                target.name,
                target.field_path,
                spec.type,
                spec.reason,
                spec.message,
                repr(spec.time),
            )
        )
        digest = hashlib.blake2b(key.encode(), digest_size=16).digest()
        # Positive and 16 hex digits, like today's nanoseconds.
        suffix = int.from_bytes(digest[:8], "big") | (1 << 60)
        return self.name_for(object_name, suffix, lambda: uuid.UUID(bytes=digest, version=4))


class Poster:
    """Takes `Posting`s and `Mark`s off `events` in order; records the first, commits the second."""

    def __init__(
        self,
        events: asyncio.Queue[QueueItem],
        recorder: Recorder,
        namer: LineNamer,
        metrics: Metrics,
        commit: Callable[[Checkpoint], None],
    ) -> None:
        self.events = events
        self.recorder = recorder
        self.namer = namer
        self.metrics = metrics
        self.commit = commit
        self._worker = WorkerThread("event-sidecar-poster")
        #: Outcomes so far (create, patch or a drop cause), for logs and tests.
        self.outcomes: dict[str, int] = {}

    async def run(self) -> None:
        """Until cancelled."""
        try:
            while True:
                item = await self.events.get()
                try:
                    await self._handle(item)
                finally:
                    self.events.task_done()
                    self.metrics.queue_depth.set(self.events.qsize())
        finally:
            self._worker.close()

    async def _handle(self, item: QueueItem) -> None:
        """Commit a `Mark`; record a `Posting` on the worker thread and time its latency."""
        if type(item) is Mark:
            item.reached = True
            # Every Event before the mark is recorded: the correlator is at the mark's point.
            state = await self._worker.call(self.recorder.correlator.export)
            self.commit(replace(item.checkpoint, correlation=state))
            return
        assert type(item) is Posting
        try:
            outcome = await self._worker.call(lambda: self._record(item.spec))
        except Exception:
            # A bug must cost one Event, not the daemon: log it with the line's rule, count it.
            log.exception("cannot record an Event from rule %s", item.spec.rule)
            self.metrics.events_dropped.labels("invalid").inc()
            return
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        if outcome in ("create", "patch", "already_written"):
            self.metrics.event_latency.observe(time.monotonic() - item.read_at)

    def _record(self, spec: EventSpec) -> RecordOutcome:
        """On the worker thread: record one Event under its line-derived name."""
        self.namer.current = spec
        try:
            return self.recorder.record(spec)
        finally:
            self.namer.current = None

    def drop_queued(self, cause: DropCause) -> int:
        """Count everything still queued as dropped (shutdown past its deadline)."""
        dropped = 0
        while True:
            try:
                item = self.events.get_nowait()
            except asyncio.QueueEmpty:
                break
            self.events.task_done()
            if type(item) is Posting:
                dropped += 1
        if dropped:
            self.metrics.events_dropped.labels(cause).inc(dropped)
        self.metrics.queue_depth.set(0)
        return dropped
