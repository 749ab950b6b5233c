"""The poster's concurrent writes: each object's Events in order, checkpoints never ahead."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from dataclasses import replace
from typing import Any

from prometheus_client import CollectorRegistry

from sidecar.core.correlate import Correlator, CorrelatorSettings
from sidecar.core.events.corev1 import Event, InvolvedObject
from sidecar.model import EventSpec, FilePosition, ObjectTarget
from sidecar.recording.naming import LineNamer
from sidecar.recording.poster import Poster
from sidecar.recording.queue import Mark, Posting, QueueItem
from sidecar.recording.recorder import Recorder
from sidecar.runtime.checkpoints import Checkpoint
from sidecar.runtime.metrics import Metrics
from sidecar.runtime.sinks import MemorySink

OBJECTS = 6
PER_OBJECT = 20


class SlowSink(MemorySink):
    """Writes take a random few milliseconds; remembers the order they ended in, per object,
    and how many ran at once at most."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self.running = 0
        self.most_running = 0
        self.ended: dict[str, list[str]] = {}
        self.finished: set[str] = set()
        self.order: list[str] = []

    def _slowly(self, event: Event) -> None:
        with self._lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
            delay = self._random.uniform(0.0, 0.004)
        time.sleep(delay)
        with self._lock:
            self.running -= 1
            self.ended.setdefault(event.involved.name, []).append(event.reason)
            self.finished.add(event.reason)
            self.order.append(event.reason)

    def create(self, event: Event) -> None:
        self._slowly(event)
        super().create(event)

    def patch(self, event: Event, patch: dict[str, Any]) -> None:
        self._slowly(event)
        super().patch(event, patch)


def spec(obj: int, n: int) -> EventSpec:
    # A reason of its own per Event: neither aggregated nor deduplicated, so every one is a
    # create whose order can be seen.
    return EventSpec(
        rule="r",
        target=ObjectTarget("Pod", f"web-{obj}", "shop", "v1"),
        type="Normal",
        reason=f"R{obj}x{n}",
        message="m",
        time=1_700_000_000.0 + n,
    )


def poster_for(
    sink: MemorySink, events: asyncio.Queue[QueueItem], commit: Any, writes: int = 8
) -> Poster:
    namer = LineNamer("c", "h")
    metrics = Metrics(CollectorRegistry())
    recorder = Recorder(
        sink=sink,
        correlator=Correlator(CorrelatorSettings(), namer),
        namer=namer,
        metrics=metrics,
        component="c",
        host="h",
        clock=time.time,
    )
    return Poster(events, recorder, namer, metrics, commit, writes=writes)


async def stop(poster: Poster, task: asyncio.Task[None]) -> None:
    """Cancel the poster's `task`, as the daemon does, and close its threads."""
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await poster.close()


async def test_each_objects_events_are_written_in_order_while_objects_overlap() -> None:
    sink = SlowSink(seed=7)
    events: asyncio.Queue[QueueItem] = asyncio.Queue()
    rng = random.Random(3)
    order = [(obj, n) for obj in range(OBJECTS) for n in range(PER_OBJECT)]
    # Interleave the objects at random, each object's own Events still in their order.
    rng.shuffle(order)
    order.sort(key=lambda pair: pair[1])
    rng.shuffle(order)
    nexts = dict.fromkeys(range(OBJECTS), 0)
    for obj, _ in order:
        events.put_nowait(Posting(spec(obj, nexts[obj]), time.monotonic()))
        nexts[obj] += 1
    poster = poster_for(sink, events, lambda _: None)
    task = asyncio.create_task(poster.run())
    await asyncio.wait_for(events.join(), 30)
    await stop(poster, task)
    assert poster.outcomes == {"create": OBJECTS * PER_OBJECT}
    for obj in range(OBJECTS):
        assert sink.ended[f"web-{obj}"] == [f"R{obj}x{n}" for n in range(PER_OBJECT)]
    assert 1 < sink.most_running <= 8


async def test_a_checkpoint_is_committed_only_after_every_write_queued_before_it() -> None:
    sink = SlowSink(seed=11)
    events: asyncio.Queue[QueueItem] = asyncio.Queue()
    before: list[set[str]] = []
    commits: list[tuple[int, bool]] = []

    def commit(checkpoint: Checkpoint) -> None:
        (position,) = checkpoint.files
        index = position.offset
        commits.append((index, before[index] <= sink.finished))

    for mark in range(10):
        queued: set[str] = set()
        for n in range(12):
            item = spec((mark + n) % OBJECTS, mark * 12 + n)
            events.put_nowait(Posting(item, time.monotonic()))
            queued.add(item.reason)
        before.append(queued | (before[-1] if before else set()))
        position = FilePosition(
            path="log", device=1, inode=1, fingerprint="", fingerprint_size=0, offset=mark
        )
        events.put_nowait(Mark(Checkpoint(files=(position,))))
    poster = poster_for(sink, events, commit, writes=4)
    task = asyncio.create_task(poster.run())
    await asyncio.wait_for(events.join(), 30)
    await stop(poster, task)
    # Every mark committed, in order, and never before a write queued ahead of it ended.
    assert commits == [(mark, True) for mark in range(10)]
    assert sink.most_running > 1


async def test_a_single_writer_keeps_the_queue_order() -> None:
    sink = SlowSink(seed=5)
    events: asyncio.Queue[QueueItem] = asyncio.Queue()
    for n in range(10):
        events.put_nowait(Posting(spec(n % 3, n), time.monotonic()))
    poster = poster_for(sink, events, lambda _: None, writes=1)
    task = asyncio.create_task(poster.run())
    await asyncio.wait_for(events.join(), 30)
    await stop(poster, task)
    assert sink.most_running == 1
    assert sink.order == [f"R{n % 3}x{n}" for n in range(10)]


class SlowLookupSink(MemorySink):
    """Knows no object until it has resolved it; each look-up takes 20 ms. Counts look-ups per
    object and how many ran at once."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.seen: set[ObjectTarget] = set()
        self.lookups: dict[str, int] = {}
        self.running = 0
        self.most_running = 0

    def known(self, target: ObjectTarget) -> InvolvedObject | None:
        with self._lock:
            return super().resolve(target) if target in self.seen else None

    def resolve(self, target: ObjectTarget) -> InvolvedObject:
        with self._lock:
            if target in self.seen:
                return super().resolve(target)
            self.running += 1
            self.most_running = max(self.most_running, self.running)
            self.lookups[target.name] = self.lookups.get(target.name, 0) + 1
        time.sleep(0.02)
        with self._lock:
            self.running -= 1
            self.seen.add(target)
        return replace(super().resolve(target), uid=f"uid-{target.name}")


async def test_objects_not_known_are_looked_up_ahead_in_parallel_and_only_once() -> None:
    sink = SlowLookupSink()
    events: asyncio.Queue[QueueItem] = asyncio.Queue()
    objects = 32
    # Each object twice in the window: the second Posting shares the first one's look-up.
    for n in range(2):
        for obj in range(objects):
            events.put_nowait(Posting(spec(obj, n), time.monotonic()))
    poster = poster_for(sink, events, lambda _: None)
    task = asyncio.create_task(poster.run())
    await asyncio.wait_for(events.join(), 30)
    await stop(poster, task)
    assert poster.outcomes == {"create": 2 * objects}
    assert sink.lookups == {f"web-{obj}": 1 for obj in range(objects)}
    assert 1 < sink.most_running <= 8
    assert {event.involved.uid for event in sink.events.values()} == {
        f"uid-web-{obj}" for obj in range(objects)
    }
