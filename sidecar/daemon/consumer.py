"""The block consumer: feeds a source's blocks through the pipeline and queues their Events.

It also queues the checkpoint marks that follow those Events (the file or pod log source's
positions and the transition state that goes with them), so that a position is saved only once
the Events of the lines before it are written. Backpressure is chosen per source: lossless (files,
pod logs) waits for room in the Event queue; lossy (sockets) drops and counts.
"""

from __future__ import annotations

import asyncio
import logging
import time

from sidecar.core.pipeline import LinePipeline
from sidecar.core.transitions import TransitionTracker
from sidecar.model import FilePosition, PodLogPosition
from sidecar.recording.queue import Mark, Posting, QueueItem
from sidecar.runtime.checkpoints import Checkpoint
from sidecar.runtime.metrics import Metrics
from sidecar.sources import Block

log = logging.getLogger(__name__)


class BlockConsumer:
    """Feeds a source's blocks through the pipeline and queues the Events they call for."""

    def __init__(
        self,
        pipeline: LinePipeline,
        metrics: Metrics,
        blocks: asyncio.Queue[Block],
        events: asyncio.Queue[QueueItem],
        tracker: TransitionTracker,
        *,
        source: str,
        lossless: bool,
        mark_interval: float,
    ) -> None:
        self.pipeline = pipeline
        self.metrics = metrics
        self.source = source
        self.blocks = blocks
        self.events = events
        self.tracker = tracker
        self.lossless = lossless
        self.mark_interval = mark_interval
        self._positions: tuple[FilePosition, ...] | None = None
        self._pod_log: PodLogPosition | None = None
        self._unmarked = False
        self._outstanding: Mark | None = None
        #: The first block is marked at once: a checkpoint soon after start bounds what a crash
        #: in the first seconds makes us re-read, and records files that may rotate meanwhile.
        self._marked_at = 0.0

    async def run(self) -> None:
        """Until cancelled.

        The wait for a block is bounded with `asyncio.timeout`, not `asyncio.wait_for`: in
        Python 3.11 `wait_for` returns the block instead of raising when the cancellation arrives
        together with it, and a decoder that swallows its cancellation wedges the shutdown.
        """
        while True:
            # With nothing left to mark, wait for the next block without waking: an idle daemon
            # has no reason to look every `mark_interval`.
            pending = self._unmarked
            try:
                async with asyncio.timeout(self.mark_interval if pending else None):
                    block = await self.blocks.get()
            except TimeoutError:
                await self.mark()
                continue
            try:
                await self._decode(block)
            except Exception:
                # Decoders are total, so this is a bug; it must cost one block, not the daemon.
                log.exception("cannot decode a block of %d bytes", len(block.data))
            finally:
                self.blocks.task_done()
            if time.monotonic() - self._marked_at >= self.mark_interval:
                await self.mark()

    async def _decode(self, block: Block) -> None:
        """Feed one block; queue its Events, then note its positions (they follow the Events)."""
        fed = self.pipeline.feed(block.data, too_long=block.too_long, default_time=block.stamp_time)
        self.metrics.count_lines(self.source, fed.counts)
        for spec in fed.specs:
            await self._queue(Posting(spec, block.read_at))
        if block.positions is not None:
            self._positions = block.positions
            self._unmarked = True
        if block.pod_log is not None:
            self._pod_log = block.pod_log
            self._unmarked = True

    async def _queue(self, item: Posting) -> None:
        """Files wait for room (lossless); sockets drop and count (the API never slows them)."""
        events = self.events
        if self.lossless:
            await events.put(item)
        else:
            try:
                events.put_nowait(item)
            except asyncio.QueueFull:
                self.metrics.events_dropped.labels("queue_full").inc()
        self.metrics.queue_depth.set(events.qsize())

    async def mark(self, *, wait: bool = True) -> None:
        """Queue a checkpoint of the positions decoded so far, if they changed since the last.

        At most one mark waits in the queue: while the API stalls, the positions simply move on
        and the next mark, once the poster has reached the previous one, carries them. Without
        `wait` (the drain) a full queue skips the mark instead of waiting for the poster.
        """
        self._marked_at = time.monotonic()
        if not self._unmarked or (self._positions is None and self._pod_log is None):
            return
        if self._outstanding is not None and not self._outstanding.reached:
            return
        transitions = tuple(tuple(row) for row in self.tracker.export())
        pod_logs = () if self._pod_log is None else (self._pod_log,)
        trackers = tuple(self.tracker.meanings.items())
        mark = Mark(
            Checkpoint(self._positions or (), transitions, pod_logs=pod_logs, trackers=trackers)
        )
        if wait:
            await self.events.put(mark)
        else:
            try:
                self.events.put_nowait(mark)
            except asyncio.QueueFull:
                return
        self._unmarked = False
        self._outstanding = mark
