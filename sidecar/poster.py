"""The poster: one consumer of the Event queue, writing through the blocking `Recorder` with
several writes in flight, and the checkpoint commits that follow the writes.

The Recorder blocks while it retries (as client-go's does), so it never runs on the event loop:
- correlation (`Recorder.prepare`: resolve, build, correlate) runs on one thread, in queue
  order, so dedup and aggregation decide exactly as a serial writer would. Resolving an object
  the sink does not know yet is a GET, so the poster looks ahead: the objects of the Postings
  already queued (up to `LOOKAHEAD` items) are looked up at once, `writes` at a time, and
  correlation takes the answers in order. A burst about many new objects (a controller's start)
  costs a round trip per `writes` objects, not one per object;
- the writes it decides on run on a small pool of threads (`writes`, default 8; the client's
  connection pool keeps a connection per thread), bounded: the queue is not read further while
  all are busy (and never more than `LOOKAHEAD` items ahead). Each object's writes are chained: one for object X starts after X's previous
  write ended, so X's Events are created and PATCHed in order (and its rate-limit back-off is
  its own). Writes about different objects overlap;
- a `Mark` is committed once every write queued before it has ended (written or counted as
  dropped), with the correlator's state taken when the mark was reached (after every decision
  before it, before any after it); marks are committed in order.

The threads are daemon threads so that a shutdown whose deadline passed is not held up by a write
still sleeping between retries.

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
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from sidecar.checkpoint import Checkpoint
from sidecar.correlate import Write
from sidecar.events import EventNamer, InvolvedObject
from sidecar.metrics import Metrics
from sidecar.model import DropCause, EventSpec, ObjectTarget, RecordOutcome
from sidecar.recorder import ObjectKey, Recorder, object_key
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
#: A queued item taken ahead, with the look-up of its object when one was started.
Ahead = tuple[QueueItem, "asyncio.Future[InvolvedObject] | None"]
#: How many queued items the poster takes ahead of the one it correlates.
LOOKAHEAD = 64


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
    """Takes `Posting`s and `Mark`s off `events` in order; records the first (up to `writes` at a
    time, each object's in order), commits the second once everything before it is written.

    `events.task_done()` is called for an item once it is fully handled (a Posting's write ended,
    a Mark committed), so `events.join()` still means "everything queued is written".
    """

    def __init__(
        self,
        events: asyncio.Queue[QueueItem],
        recorder: Recorder,
        namer: LineNamer,
        metrics: Metrics,
        commit: Callable[[Checkpoint], None],
        *,
        writes: int = 8,
    ) -> None:
        if writes < 1:
            raise ValueError(f"writes must be at least 1, not {writes}")
        self.events = events
        self.recorder = recorder
        self.namer = namer
        self.metrics = metrics
        self.commit = commit
        self._correlating = WorkerThread("event-sidecar-correlate")
        self._writers = [WorkerThread(f"event-sidecar-write-{n}") for n in range(writes)]
        #: Writers not busy; a write takes one once its object's previous write ended.
        self._idle: asyncio.Queue[WorkerThread] = asyncio.Queue()
        for writer in self._writers:
            self._idle.put_nowait(writer)
        #: At most `writes` Postings between correlation and the end of their write.
        self._slots = asyncio.Semaphore(writes)
        #: Each object's last write not ended yet (the next one for it waits for it).
        self._chains: dict[ObjectKey, asyncio.Task[None]] = {}
        #: Every write not ended yet, and the last mark not committed yet.
        self._pending: set[asyncio.Task[None]] = set()
        self._last_mark: asyncio.Task[None] | None = None
        #: Outcomes so far (create, patch or a drop cause), for logs and tests.
        self.outcomes: dict[str, int] = {}
        #: Items taken off `events` ahead of the one being handled, in order.
        self._ahead: deque[Ahead] = deque()
        #: Look-ups under way, by object, shared by the Postings ahead about the same object.
        self._looking_up: dict[ObjectTarget, asyncio.Future[InvolvedObject]] = {}
        self._lookups = ThreadPoolExecutor(writes, thread_name_prefix="event-sidecar-lookup")

    async def run(self) -> None:
        """Until cancelled."""
        try:
            while True:
                item, looked_up = await self._next()
                try:
                    handed_over = await self._handle(item, looked_up)
                except BaseException:
                    self.events.task_done()
                    raise
                if not handed_over:
                    self._done()
        finally:
            self._lookups.shutdown(wait=False, cancel_futures=True)
            self._correlating.close()
            for writer in self._writers:
                writer.close()

    def _done(self) -> None:
        self.events.task_done()
        self.metrics.queue_depth.set(self.events.qsize() + len(self._ahead))

    async def _next(self) -> Ahead:
        """The next item in queue order; first takes what is queued behind it (up to
        `LOOKAHEAD`), starting the look-ups of their objects. Taken items stay unfinished for
        `events.join()` until handled."""
        if not self._ahead:
            self._ahead.append(self._look_ahead(await self.events.get()))
        while len(self._ahead) < LOOKAHEAD:
            try:
                item = self.events.get_nowait()
            except asyncio.QueueEmpty:
                break
            self._ahead.append(self._look_ahead(item))
        return self._ahead.popleft()

    def _look_ahead(self, item: QueueItem) -> Ahead:
        """`item`, with a look-up of its object started if the sink does not know it yet. Only
        for a recorder that takes the answer (`prepare`): else it would look up twice."""
        if type(item) is not Posting or not self.recorder.concurrent_writes:
            return item, None
        target, sink = item.spec.target, self.recorder.sink
        if sink.knows(target):
            return item, None
        future = self._looking_up.get(target)
        if future is None:
            future = asyncio.get_running_loop().run_in_executor(self._lookups, sink.resolve, target)
            self._looking_up[target] = future
            future.add_done_callback(lambda done: self._looked_up(target, done))
        return item, future

    def _looked_up(self, target: ObjectTarget, done: asyncio.Future[InvolvedObject]) -> None:
        # Postings taken later look up again (or find it cached), as a serial writer would.
        if self._looking_up.get(target) is done:
            del self._looking_up[target]

    async def _handle(
        self, item: QueueItem, looked_up: asyncio.Future[InvolvedObject] | None = None
    ) -> bool:
        """Correlate a `Posting` and start its write, or take a `Mark`'s state and schedule its
        commit; True when a task now owns the item (and will call `_done`)."""
        if type(item) is Mark:
            # Every decision before the mark is taken, none after: the correlator is at the
            # mark's point, whatever writes are still in flight.
            state = await self._correlating.call(self.recorder.correlator.export)
            waits = [*self._pending, *([self._last_mark] if self._last_mark else [])]
            mark = asyncio.create_task(self._commit_after(waits, item, state))
            self._last_mark = mark
            return True
        assert type(item) is Posting
        if not self.recorder.concurrent_writes:
            await self._record_serially(item)
            return False
        involved: InvolvedObject | None = None
        if looked_up is not None:
            try:
                involved = await looked_up
            except Exception:  # the pool shut down: correlation resolves it itself
                involved = None
        try:
            decision = await self._correlating.call(lambda: self._prepare(item.spec, involved))
        except Exception:
            # A bug must cost one Event, not the daemon: log it with the line's rule, count it.
            log.exception("cannot record an Event from rule %s", item.spec.rule)
            self.metrics.events_dropped.labels("invalid").inc()
            return False
        if not isinstance(decision, Write):
            self._count(decision)
            return False
        await self._slots.acquire()
        key = object_key(decision.event)
        task = asyncio.create_task(self._write(self._chains.get(key), decision, item))
        self._chains[key] = task
        self._pending.add(task)
        task.add_done_callback(lambda done: self._ended(key, done))
        return True

    def _ended(self, key: ObjectKey, task: asyncio.Task[None]) -> None:
        self._pending.discard(task)
        if self._chains.get(key) is task:
            del self._chains[key]
        self._slots.release()
        self._done()

    async def _write(
        self, previous: asyncio.Task[None] | None, decision: Write, item: Posting
    ) -> None:
        """After `previous` (this object's last write) ended, write on an idle writer thread."""
        if previous is not None:
            await asyncio.wait([previous])
        writer = await self._idle.get()
        try:
            outcome = await writer.call(lambda: self.recorder.write(decision))
        except Exception:
            log.exception("cannot record an Event from rule %s", item.spec.rule)
            self.metrics.events_dropped.labels("invalid").inc()
            return
        finally:
            self._idle.put_nowait(writer)
        self._count(outcome)
        if outcome in ("create", "patch", "already_written"):
            self.metrics.event_latency.observe(time.monotonic() - item.read_at)

    async def _commit_after(self, waits: list[asyncio.Task[Any]], mark: Mark, state: Any) -> None:
        """Commit `mark` (with the correlator's `state` at its point) once `waits` ended."""
        try:
            if waits:
                await asyncio.wait(waits)
            mark.reached = True
            self.commit(replace(mark.checkpoint, correlation=state))
        except Exception:
            log.exception("cannot commit a checkpoint")
        finally:
            self._done()

    async def _record_serially(self, item: Posting) -> None:
        """For a recorder that cannot split `prepare` from `write`: the whole `record` on the
        correlating thread, after every write started before it ended."""
        if self._pending:
            await asyncio.wait(list(self._pending))
        try:
            outcome = await self._correlating.call(lambda: self._record(item.spec))
        except Exception:
            log.exception("cannot record an Event from rule %s", item.spec.rule)
            self.metrics.events_dropped.labels("invalid").inc()
            return
        self._count(outcome)
        if outcome in ("create", "patch", "already_written"):
            self.metrics.event_latency.observe(time.monotonic() - item.read_at)

    def _record(self, spec: EventSpec) -> RecordOutcome:
        """On the correlating thread: record one Event under its line-derived name."""
        self.namer.current = spec
        try:
            return self.recorder.record(spec)
        finally:
            self.namer.current = None

    def _count(self, outcome: RecordOutcome) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def _prepare(self, spec: EventSpec, involved: InvolvedObject | None) -> Write | DropCause:
        """On the correlating thread: prepare one Event under its line-derived name."""
        self.namer.current = spec
        try:
            return self.recorder.prepare(spec, involved)
        finally:
            self.namer.current = None

    def drop_queued(self, cause: DropCause) -> int:
        """Count everything still queued as dropped (shutdown past its deadline)."""
        dropped = 0
        while self._ahead:
            item, _ = self._ahead.popleft()
            self.events.task_done()
            if type(item) is Posting:
                dropped += 1
        while True:
            try:
                item = self.events.get_nowait()
            except asyncio.QueueEmpty:
                break
            self.events.task_done()
            if type(item) is Posting:
                dropped += 1
        # Writes not ended: those still waiting are cancelled; one already on its thread runs
        # to its end but is counted here (the daemon is past its deadline and will not know).
        for task in list(self._pending):
            task.cancel()
            dropped += 1
        if dropped:
            self.metrics.events_dropped.labels(cause).inc(dropped)
        self.metrics.queue_depth.set(0)
        return dropped
