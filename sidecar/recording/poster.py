"""The poster: one consumer of the Event queue, deciding each Event's writes in queue order and
making them with several in flight, and the checkpoint commits that follow the writes.

Everything runs on the event loop, and nothing in it blocks:
- correlation (`Recorder.plan`: build, correlate, and in events.k8s.io/v1 mode observe the
  series) runs inline, in queue order, so dedup, aggregation and series decide exactly as a
  serial writer would. It needs each Event's object resolved, and resolving an object the sink
  does not know yet is a GET (through the `Sender`: the Kubernetes sink's on the event loop), so
  the poster looks ahead: the objects of the Postings already queued (up to `LOOKAHEAD` items)
  are looked up at once, `writes` at a time, and correlation takes the answers in order. A
  burst about many new objects (a controller's start) costs a round trip per `writes` objects,
  not one per object;
- the writes it decides are coroutines (`Recorder.write_steps`, driven by `drive_async` of
  `sidecar.recording.steps` over a
  `Sender`: the Kubernetes sink's is aiohttp, with a kept-alive connection per write in flight),
  `writes` (default 8) at a time. Each object's writes are chained: one for object X starts
  after X's previous write ended, so X's Events are created and PATCHed in order (and its
  rate-limit back-off is its own). Writes about different objects overlap, so a burst about a
  few objects still fills the `writes` when others are queued behind it: the queue is read on
  while fewer than `LOOKAHEAD` writes are decided and not ended (and never more than `LOOKAHEAD`
  items ahead). A retry's wait is an `asyncio.sleep`, so a shutdown past its deadline cancels it;
- a `Mark` is committed once every write queued before it has ended (written or counted as
  dropped), with the correlator's state (and the series state, in events.k8s.io/v1 mode) taken
  when the mark was reached (after every decision before it, before any after it); marks are
  committed in order. A write abandoned instead (`drop_queued`: the shutdown's deadline passed
  while it still waited for the API) ends nothing: the marks after it are never committed, so
  the checkpoint stays behind its line and the next start reads it again;
- a `Tick` (the series heartbeat, the shutdown's last series counts) is decided in queue order
  too, and its writes chained like the others: a series' PATCHes never cross, and a mark waits
  for the tick's writes queued before it.

A sink without a `sender` of its own (the memory sink of `--dry-run`, tests' sinks) is written
and resolved through `ThreadedSender` (`sidecar.recording.senders`): its blocking calls on
daemon threads, one per write or look-up in flight. The queue's items are in
`sidecar.recording.queue`, the line-derived Event names in `sidecar.recording.naming`.

What holds across a crash (`kill -9`), for the file source:
- No line is skipped: a file's offset is checkpointed only after the Events of the lines before it
  are recorded, so a crash can only make lines be read again.
- No occurrence is counted twice: the checkpoint also carries the correlator's state at that point
  (which Event each dedup or aggregation key PATCHes, at which count), so a repeat read again
  PATCHes the same Event to the same absolute count. A line read again whose Event was created
  after the checkpoint gets the same name (`LineNamer` derives it from the line's time and
  content), so its create answers 409: counted as `already_written`, not a drop, and the
  correlator keeps that Event for the repeats that follow.
- In events.k8s.io/v1 mode, no series occurrence is lost or counted twice: the checkpoint carries
  each series (its Event, the count observed and the count its decided writes store), so counts
  only in memory at the crash are still pending after it, and a repeat read again continues its
  series at the saved count.
- Not covered: lines without a time (their Events get wall-clock names, so one read again is
  written again), the spam filter's buckets (they restart full: a re-read line may be written
  where it was suppressed, with the right count), and Events from the socket source (not re-read).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from sidecar.core.correlate import CorrelationState
from sidecar.core.events.corev1 import InvolvedObject
from sidecar.core.events.series import SeriesRecord
from sidecar.model import DropCause, EventSpec, ObjectTarget, RecordOutcome
from sidecar.recording.naming import LineNamer
from sidecar.recording.queue import Mark, Posting, QueueItem, Tick
from sidecar.recording.recorder import ObjectKey, Planned, Recorder
from sidecar.recording.senders import ThreadedSender
from sidecar.recording.steps import drive_async
from sidecar.runtime.checkpoints import Checkpoint
from sidecar.runtime.metrics import Metrics
from sidecar.runtime.sinks import Sender, unresolved
from sidecar.runtime.tasks import TaskSet

log = logging.getLogger(__name__)

#: An object as resolved when its item was taken ahead: the sink's answer when it knew it, else
#: the look-up started then (None: no object, e.g. no related one).
Resolving = InvolvedObject | asyncio.Future[InvolvedObject] | None
#: A queued item taken ahead, with its object and its related object being resolved.
Ahead = tuple[QueueItem, Resolving, Resolving]
#: How many queued items the poster takes ahead of the one it correlates.
LOOKAHEAD = 64


def _committed(mark: asyncio.Task[bool]) -> bool:
    """Whether an ended mark's commit was made (a cancelled one was not)."""
    return not mark.cancelled() and mark.result()


class _Countdown:
    """Writes of one queue item not ended yet: the item is done when the last one ends."""

    __slots__ = ("left",)

    def __init__(self, left: int) -> None:
        self.left = left


class Poster:
    """Takes `Posting`s, `Tick`s and `Mark`s off `events` in order; decides the first two's
    writes and makes them (up to `writes` at a time, each object's in order), commits the third
    once everything before it is written.

    `events.task_done()` is called for an item once it is fully handled (a Posting's writes
    ended, a Mark committed), so `events.join()` still means "everything queued is written".
    `sender` makes the writes; by default the sink's own (`sink.sender(writes)`, when it has
    one), else a `ThreadedSender` over the sink.
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
        sender: Sender | None = None,
    ) -> None:
        if writes < 1:
            raise ValueError(f"writes must be at least 1, not {writes}")
        self.events = events
        self.recorder = recorder
        self.namer = namer
        self.metrics = metrics
        self.commit = commit
        if sender is None:
            sender = recorder.sink.sender(writes) or ThreadedSender(recorder.sink, writes)
        self.sender = sender
        #: At most `LOOKAHEAD` writes decided and not ended yet (some wait for their object's
        #: previous one), of which at most `writes` are being made.
        self._slots = asyncio.Semaphore(LOOKAHEAD)
        self._making = asyncio.Semaphore(writes)
        #: Each object's last write not ended yet (the next one for it waits for it).
        self._chains: dict[ObjectKey, asyncio.Task[None]] = {}
        #: Every write not ended yet.
        self._writing = TaskSet()
        #: The last mark's commit: True once committed, False when a write before it was
        #: abandoned (then no later mark commits either).
        self._last_mark: asyncio.Task[bool] | None = None
        #: Outcomes so far (create, patch or a drop cause), for logs and tests.
        self.outcomes: dict[str, int] = {}
        #: Items taken off `events` ahead of the one being handled, in order.
        self._ahead: deque[Ahead] = deque()
        #: Look-ups under way, by object, shared by the Postings ahead about the same object.
        self._looking_up: dict[ObjectTarget, asyncio.Future[InvolvedObject]] = {}
        #: At most `writes` look-ups being made.
        self._asking = asyncio.Semaphore(writes)
        #: The Posting being handled while none of its writes is started yet (waiting for its
        #: object's look-up, or for a slot): `drop_queued` counts it if `run` is cancelled then.
        self._handling: Posting | None = None

    async def run(self) -> None:
        """Until cancelled."""
        try:
            while True:
                item, involved, related = await self._next()
                self._handling = item if type(item) is Posting else None
                try:
                    handed_over = await self._handle(item, involved, related)
                except BaseException:
                    self.events.task_done()
                    raise
                self._handling = None
                if not handed_over:
                    self._done()
        finally:
            for looking_up in self._looking_up.values():
                looking_up.cancel()

    async def close(self) -> None:
        """Close the sender's connections and threads (after `run` ended)."""
        await self.sender.close()

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
        """`item`, with its object and its related object: the sink's answer when it knows
        them, else their look-ups, started now."""
        if type(item) is not Posting:
            return item, None, None
        related = item.spec.related
        return (
            item,
            self._start_resolving(item.spec.target),
            None if related is None else self._start_resolving(related),
        )

    def _start_resolving(self, target: ObjectTarget) -> Resolving:
        known = self.recorder.sink.known(target)
        if known is not None:
            return known
        future = self._looking_up.get(target)
        if future is None:
            future = asyncio.ensure_future(self._resolve(target))
            self._looking_up[target] = future
            future.add_done_callback(lambda done: self._looked_up(target, done))
        return future

    async def _resolve(self, target: ObjectTarget) -> InvolvedObject:
        """The sender's `resolve` (which never raises), `writes` at a time."""
        async with self._asking:
            return await self.sender.resolve(target)

    def _looked_up(self, target: ObjectTarget, done: asyncio.Future[InvolvedObject]) -> None:
        # Postings taken later look up again (or find it cached), as a serial writer would.
        if self._looking_up.get(target) is done:
            del self._looking_up[target]

    async def _resolved(self, target: ObjectTarget, resolving: Resolving) -> InvolvedObject:
        """`target` resolved, as `_look_ahead` found it or its look-up answers."""
        if type(resolving) is InvolvedObject:
            return resolving
        assert isinstance(resolving, asyncio.Future)  # `_look_ahead` resolves every object
        try:
            return await resolving
        except Exception:  # e.g. the look-up thread closed: as a failed look-up answers
            return unresolved(target)

    async def _handle(self, item: QueueItem, involved: Resolving, related: Resolving) -> bool:
        """Correlate a `Posting` (or decide a `Tick`) and start its writes, or take a `Mark`'s
        state and schedule its commit; True when tasks now own the item (and will call
        `_done`)."""
        if type(item) is Mark:
            # Every decision before the mark is taken, none after: the correlator is at the
            # mark's point, whatever writes are still in flight.
            state = self._export()
            mark = asyncio.create_task(
                self._commit_after(self._writing.running(), self._last_mark, item, state)
            )
            self._last_mark = mark
            return True
        if type(item) is Tick:
            kind = item.kind
            try:
                ticked = self.recorder.tick(kind)
            except Exception:
                log.exception("cannot decide the %s series writes", kind)
                return False
            if kind == "pending":
                log.info("writing the series counts only in memory", extra={"series": len(ticked)})
            return await self._start(ticked, None)
        assert type(item) is Posting
        spec = item.spec
        regarding = await self._resolved(spec.target, involved)
        second = None if spec.related is None else await self._resolved(spec.related, related)
        try:
            planned = self._plan(spec, regarding, second)
        except Exception:
            # A bug must cost one Event, not the daemon: log it with the line's rule, count it.
            log.exception("cannot record an Event from rule %s", spec.rule)
            self.metrics.events_dropped.labels("invalid").inc()
            return False
        if isinstance(planned, str):
            self._count(planned)
            return False
        return await self._start(planned, item)

    async def _start(self, writes: tuple[Planned, ...], item: Posting | None) -> bool:
        """Start `writes`, each after its object's previous write; False when there are none."""
        if not writes:
            return False
        countdown = _Countdown(len(writes))
        for decision in writes:
            await self._slots.acquire()
            key = self.recorder.write_key(decision)
            task = self._writing.spawn(
                self._write(self._chains.get(key), decision, item),
                lambda done, key=key: self._ended(key, done, countdown),  # type: ignore[misc]
            )
            self._handling = None  # counted with the writes from now on
            self._chains[key] = task
        return True

    def _ended(self, key: ObjectKey, task: asyncio.Task[None], countdown: _Countdown) -> None:
        if self._chains.get(key) is task:
            del self._chains[key]
        self._slots.release()
        countdown.left -= 1
        if not countdown.left:
            self._done()

    async def _write(
        self, previous: asyncio.Task[None] | None, decision: Planned, item: Posting | None
    ) -> None:
        """After `previous` (this object's last write) ended, make the write."""
        if previous is not None:
            await asyncio.wait([previous])
        try:
            async with self._making:
                outcome: RecordOutcome = await drive_async(
                    self.recorder.write_steps(decision), self.sender
                )
        except Exception:
            rule = item.spec.rule if item is not None else "(series heartbeat)"
            log.exception("cannot record an Event from rule %s", rule)
            self.metrics.events_dropped.labels("invalid").inc()
            return
        self._count(outcome)
        if item is not None and outcome in ("create", "patch", "already_written"):
            self.metrics.event_latency.observe(time.monotonic() - item.read_at)

    def _export(self) -> tuple[CorrelationState, tuple[SeriesRecord, ...]]:
        """The correlator's and the series' state at this point."""
        return self.recorder.correlator.export(), self.recorder.export_series()

    async def _commit_after(
        self,
        writes: list[asyncio.Task[None]],
        previous: asyncio.Task[bool] | None,
        mark: Mark,
        state: tuple[CorrelationState, tuple[SeriesRecord, ...]],
    ) -> bool:
        """Commit `mark` (with the correlator's `state` at its point) once `writes` and the
        `previous` mark's commit ended; True when committed.

        Not when one of `writes` was cancelled, or `previous` was not committed: a cancelled
        write is one `drop_queued` abandoned at a shutdown past its deadline (`asyncio.wait`
        returns for it as for a write that ended), so its Event may not be stored and its line
        must be read again at the next start.
        """
        try:
            waits: list[asyncio.Task[Any]] = [*writes, *([previous] if previous else [])]
            if waits:
                await asyncio.wait(waits)
            abandoned = sum(1 for write in writes if write.cancelled())
            if abandoned or (previous is not None and not _committed(previous)):
                log.info(
                    "checkpoint not saved: Events before it were not written",
                    extra={"abandoned": abandoned},
                )
                return False
            mark.reached = True
            correlation, series = state
            try:
                self.commit(replace(mark.checkpoint, correlation=correlation, series=series))
            except Exception:
                # Every write before it ended: the marks after it may still commit.
                log.exception("cannot commit a checkpoint")
            return True
        finally:
            self._done()

    def _count(self, outcome: RecordOutcome) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def _plan(
        self, spec: EventSpec, involved: InvolvedObject, related: InvolvedObject | None
    ) -> tuple[Planned, ...] | RecordOutcome:
        """Decide one Event's writes under its line-derived name."""
        self.namer.current = spec
        try:
            return self.recorder.plan(spec, involved, related)
        finally:
            self.namer.current = None

    def drop_queued(self, cause: DropCause) -> int:
        """Count everything still queued as dropped (shutdown past its deadline)."""
        dropped = 0
        if self._handling is not None:
            self._handling = None
            dropped += 1
        while self._ahead:
            item, _, _ = self._ahead.popleft()
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
        # Writes not ended are cancelled and counted here: a request in flight is abandoned
        # (one a `ThreadedSender` runs goes on to its end on its thread, unknown to the
        # daemon, which is past its deadline).
        dropped += self._writing.cancel()
        if dropped:
            self.metrics.events_dropped.labels(cause).inc(dropped)
        self.metrics.queue_depth.set(0)
        return dropped
