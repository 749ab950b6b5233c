"""A shutdown past its deadline abandons the writes still retrying: no checkpoint may pass them.

The daemon's drain cancels the poster's writes that are still waiting for the API (`drop_queued`);
a mark queued after them must then stay uncommitted, and so must every mark after it, so that the
next start reads their lines again (the fault suite checks the same end to end, against a real
apiserver: `tests/faults/test_shutdown_during_outage.py`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from prometheus_client import CollectorRegistry

from sidecar.core.correlate import Correlator, CorrelatorSettings
from sidecar.core.events.corev1 import Event
from sidecar.model import EventSpec, FilePosition, ObjectTarget, RetrySettings
from sidecar.recording.naming import LineNamer
from sidecar.recording.poster import Poster
from sidecar.recording.queue import Mark, Posting, QueueItem
from sidecar.recording.recorder import Recorder
from sidecar.runtime.checkpoints import Checkpoint
from sidecar.runtime.metrics import Metrics
from sidecar.runtime.sinks import MemorySink, Unreachable


class OutageSink(MemorySink):
    """Writes succeed until `down` is set, then fail as an unreachable apiserver's do."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.failed = 0

    def create(self, event: Event) -> None:
        self._maybe_down()
        super().create(event)

    def patch(self, event: Event, patch: dict[str, Any]) -> None:
        self._maybe_down()
        super().patch(event, patch)

    def _maybe_down(self) -> None:
        if self.down:
            self.failed += 1
            raise Unreachable("connection refused")


def _spec(n: int) -> EventSpec:
    return EventSpec(
        rule="r",
        target=ObjectTarget("Pod", f"web-{n % 3}", "shop", "v1"),
        type="Normal",
        reason=f"R{n}",
        message="m",
        time=1_700_000_000.0 + n,
    )


def _mark(offset: int) -> Mark:
    position = FilePosition("log", 1, 2, "ab", 2, offset)
    return Mark(Checkpoint(files=(position,)))


def _poster(sink: MemorySink, events: asyncio.Queue[QueueItem], commits: list[int]) -> Poster:
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
        # Retries far apart: the writes are still waiting when the deadline passes.
        retry=RetrySettings(interval_seconds=60.0),
        jitter=lambda: 1.0,
    )
    return Poster(
        events,
        recorder,
        namer,
        metrics,
        lambda checkpoint: commits.append(checkpoint.files[0].offset),
        writes=4,
    )


async def test_no_checkpoint_passes_a_write_abandoned_at_shutdown() -> None:
    sink = OutageSink()
    events: asyncio.Queue[QueueItem] = asyncio.Queue()
    commits: list[int] = []
    poster = _poster(sink, events, commits)
    task = asyncio.create_task(poster.run())
    try:
        for n in range(4):
            events.put_nowait(Posting(_spec(n), time.monotonic()))
        events.put_nowait(_mark(4))
        await asyncio.wait_for(events.join(), 10)
        assert commits == [4]

        sink.down = True
        for n in range(4, 10):
            events.put_nowait(Posting(_spec(n), time.monotonic()))
            if n in (6, 9):
                events.put_nowait(_mark(n + 1))
        # Each object's first write failed once and waits for its retry; its other writes wait
        # for it, and the marks for them all.
        deadline = time.monotonic() + 10
        while sink.failed < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        assert sink.failed == 3
        assert commits == [4]
    finally:
        # What the daemon's drain does once its deadline passed.
        task.cancel()
        await asyncio.wait([task])
    dropped = poster.drop_queued("shutdown")
    await asyncio.sleep(0.2)  # the cancelled writes end; the marks after them must not commit
    assert dropped == 6
    assert commits == [4]
    await asyncio.wait_for(events.join(), 1)  # every item accounted for, none left waiting
    assert len(sink.events) == 4
    await poster.close()
