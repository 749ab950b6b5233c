"""The checkpointer: writes the latest committed checkpoint once per interval at most, and at exit.

The poster commits a checkpoint once every Event before it is written; this task only decides when
to put it on disk (off the loop, on its own worker thread: a write fsyncs).

What is written is bounded, whatever the traffic: a checkpoint whose content equals the one on
disk is not written again (an idle daemon writes nothing), and writes are spaced so that on
average at most `WRITE_BUDGET` bytes per second go to disk. A busy daemon's state (the
correlator's caches full: about 850 KB) was rewritten and fsynced every second, 0.5 GB in 10
minutes; now about every 13 s. Spacing the writes loses no exactness: every checkpoint written is
whole and consistent, so a `kill -9` only means more lines read again, each giving the same
Events (see `sidecar.runtime.checkpoints`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from pathlib import Path

from sidecar.runtime.checkpoints import Checkpoint, write_checkpoint
from sidecar.runtime.threads import WorkerThread

log = logging.getLogger(__name__)

#: Bytes per second written on average at most: a small checkpoint is written every `interval`,
#: one of S bytes at most every S / WRITE_BUDGET seconds (850 KB: every 13 s), so that a large
#: state costs the disk no more than a small one, and the lines read again after a crash stay a
#: few seconds' worth.
WRITE_BUDGET = 64 * 1024


class Checkpointer:
    """Keeps the latest committed checkpoint and writes it every `interval` and at the end."""

    def __init__(self, path: Path, interval: float) -> None:
        self.path = path
        self.interval = interval
        self._latest: Checkpoint | None = None
        self._written: Checkpoint | None = None
        #: A digest of the content last written (not the content: it may be a megabyte).
        self._written_digest = b""
        self._committed = asyncio.Event()
        self._worker = WorkerThread("event-sidecar-checkpoint")
        self.writes = 0
        #: Bytes written in all, and by the last write.
        self.bytes_written = 0
        self._last_size = 0

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
            await asyncio.sleep(max(self.interval, self._last_size / WRITE_BUDGET))

    async def write(self) -> None:
        """Write the latest commit unless it, or a checkpoint of the same content, is written
        already (serialised and written on the worker thread).

        One write at a time, even across cancellation: cancelling the periodic task does not
        stop a write already running, and the final write queues behind it on the same thread.
        """
        checkpoint = self._latest
        if checkpoint is None or checkpoint is self._written:
            return
        self._last_size = await self._worker.call(lambda: self._write(checkpoint))
        self._written = checkpoint

    def _write(self, checkpoint: Checkpoint) -> int:
        """On the worker thread: the bytes written (0 when the content is on disk already)."""
        data = checkpoint.to_json()
        digest = hashlib.blake2b(data, digest_size=16).digest()
        if digest == self._written_digest:
            return 0
        write_checkpoint(self.path, data)
        self._written_digest = digest
        self.writes += 1
        self.bytes_written += len(data)
        return len(data)

    def close(self) -> None:
        """Let the worker thread end once the writes queued so far are done."""
        self._worker.close()
