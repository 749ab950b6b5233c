"""The checkpointer: writes the latest committed checkpoint once per interval at most, and at exit.

The poster commits a checkpoint once every Event before it is written; this task only decides when
to put it on disk (off the loop, on its own worker thread: a write fsyncs).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from sidecar.checkpoint import Checkpoint, write_checkpoint
from sidecar.threads import WorkerThread

log = logging.getLogger(__name__)


class Checkpointer:
    """Keeps the latest committed checkpoint and writes it every `interval` and at the end."""

    def __init__(self, path: Path, interval: float) -> None:
        self.path = path
        self.interval = interval
        self._latest: Checkpoint | None = None
        self._written: Checkpoint | None = None
        self._committed = asyncio.Event()
        self._worker = WorkerThread("event-sidecar-checkpoint")
        self.writes = 0

    def commit(self, checkpoint: Checkpoint) -> None:
        """Called once everything queued before `checkpoint` is recorded."""
        self._latest = checkpoint
        self._committed.set()

    async def run(self) -> None:
        """Until cancelled: write a commit at once, then at most once per `interval`.

        A failed write is logged and retried: it only means that a restart would re-read more,
        so it is no reason to stop writing Events.
        """
        failing = False
        while True:
            await self._committed.wait()
            self._committed.clear()
            try:
                await self.write()
            except OSError as error:
                if not failing:
                    log.warning("cannot write the checkpoint %s: %s", self.path, error)
                failing = True
            else:
                failing = False
            await asyncio.sleep(self.interval)

    async def write(self) -> None:
        """Write the latest commit unless it is written already (on the worker thread).

        One write at a time, even across cancellation: cancelling the periodic task does not
        stop a write already running, and the final write queues behind it on the same thread.
        """
        checkpoint = self._latest
        if checkpoint is None or checkpoint is self._written:
            return
        await self._worker.call(lambda: write_checkpoint(self.path, checkpoint))
        self._written = checkpoint
        self.writes += 1

    def close(self) -> None:
        """Let the worker thread end once the writes queued so far are done."""
        self._worker.close()
