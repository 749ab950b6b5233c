"""The file source: tails log files on the shared volume, through rotation, across restarts.

One task scans the configured paths and globs, reads every file it follows and puts blocks of
complete lines on the decoder's queue. When that queue is full it waits: the lines stay on disk,
so backpressure loses nothing.

- **Identity.** A file is its device, inode and a fingerprint (hash) of its first bytes; the path
  is only where it was last seen. A checkpoint entry whose inode was reused by another file does
  not match that file's first bytes, so the new file is read from its start.
- **Rename rotation.** When a path names another file, or no file, the file we had is kept open
  and read to its end, and for `rotate_wait` seconds more (the writer may still write to its old
  handle); the new file is read from its start. Nothing is lost.
- **copytruncate.** A file shorter than our offset, or whose first bytes changed, was truncated:
  it is read again from the start and counted (`rotations{kind="truncate"}`). Lines written between
  the copy and the truncation are lost, as with every log shipper; rename rotation is better.
- **Change detection.** inotify on the directories when available, else polling
  (`sidecar.sources.watch`). Both only decide *when* to look; the same scan and read code runs
  either way, so the results are the same.
- **Positions.** Each block carries every file's offset just past the last complete line handed
  over. The daemon checkpoints those offsets only once the Events from the block are recorded.

Reads are plain `os.pread` on the event loop: the files are local (an `emptyDir`), each read is at
most `read_size` bytes, and a thread hop per read would cost more than the read.
"""

from __future__ import annotations

import asyncio
import glob
import hashlib
import logging
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from sidecar.checkpoint import Checkpoint
from sidecar.metrics import Metrics
from sidecar.model import FilePosition
from sidecar.scan import LineFramer
from sidecar.settings import FileSettings
from sidecar.sources import Block
from sidecar.sources.watch import ChangeWatcher

log = logging.getLogger(__name__)

FileId = tuple[int, int]


def fingerprint(data: bytes) -> str:
    """The hash that identifies a file by its first bytes."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclass(slots=True)
class _Followed:
    """A file being read."""

    path: str
    fd: int
    device: int
    inode: int
    fingerprint: str
    fingerprint_size: int
    #: Where the next read starts.
    offset: int
    #: Just past the last newline handed over; what a checkpoint may record.
    committed: int
    framer: LineFramer
    #: `time.monotonic()` when its path stopped naming it (rotated or deleted); None while it does.
    gone_since: float | None = None
    last_growth: float = field(default_factory=time.monotonic)

    @property
    def file_id(self) -> FileId:
        """(device, inode): the key while the file is open (an open inode cannot be reused)."""
        return (self.device, self.inode)

    def refresh_fingerprint(self, limit: int) -> None:
        """Fingerprint the file's first `limit` bytes (fewer while it is shorter): when opened,
        after a truncation, and as a short file grows towards `limit`."""
        head = os.pread(self.fd, limit, 0)
        self.fingerprint, self.fingerprint_size = fingerprint(head), len(head)

    def starts_with(self, digest: str, size: int) -> bool:
        """Whether the file's first `size` bytes still have the fingerprint `digest`."""
        head = os.pread(self.fd, size, 0)
        return len(head) == size and fingerprint(head) == digest

    def position(self) -> FilePosition:
        """What a checkpoint records about this file."""
        return FilePosition(
            path=self.path,
            device=self.device,
            inode=self.inode,
            fingerprint=self.fingerprint,
            fingerprint_size=self.fingerprint_size,
            offset=self.committed,
        )


class FileSource:
    """Follows the files named by `settings.paths` and puts their lines on `blocks`."""

    def __init__(
        self,
        settings: FileSettings,
        blocks: asyncio.Queue[Block],
        metrics: Metrics,
        *,
        name: str = "file",
        resume: Checkpoint | None = None,
        exclude: frozenset[str] = frozenset(),
    ) -> None:
        self.settings = settings
        self.blocks = blocks
        self.metrics = metrics
        self.name = name
        self._resume = resume
        #: Real paths never read: the checkpoint, the file our stderr goes to.
        self._exclude = exclude | _stderr_file()
        self._files: dict[FileId, _Followed] = {}
        self._watcher = ChangeWatcher(settings)
        # Dashboards should see zeros, not gaps.
        for kind in ("rename", "truncate"):
            metrics.rotations.labels(name, kind)
        metrics.source_lag.labels(name).set(0)
        #: True once the first scan has opened what exists: `/readyz`'s "sources open".
        self.ready = False

    @property
    def mode(self) -> str:
        """How changes are noticed: "inotify" or "poll", once running."""
        return self._watcher.mode

    @property
    def followed(self) -> list[FilePosition]:
        """Where each followed file stands (for tests and logs)."""
        return [followed.position() for followed in self._files.values()]

    async def run(self) -> None:
        """Follow the files until cancelled."""
        self._watcher.start()
        try:
            self._scan(first=True)
            self.ready = True
            await self._emit_positions()
            while True:
                # A busy file does not postpone the scan: a new or rotated file is noticed
                # after at most a few reads of each followed file.
                busy = await self._read_all()
                if await self._close_finished():
                    await self._emit_positions()
                if not busy:
                    await self._watcher.wait()
                if self._scan(first=False):
                    await self._emit_positions()
        finally:
            self._watcher.stop()
            for followed in self._files.values():
                os.close(followed.fd)
            self._files.clear()

    # -- scanning --------------------------------------------------------------------------------

    def _expand(self) -> dict[FileId, tuple[str, os.stat_result]]:
        """The regular files the patterns name now, by identity."""
        found: dict[FileId, tuple[str, os.stat_result]] = {}
        for pattern in self.settings.paths:
            # glob.glob rather than Path.glob: the patterns are absolute.
            paths = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]  # noqa: PTH207
            for path in paths:
                try:
                    info = os.stat(path)  # noqa: PTH116
                except OSError:
                    continue
                if not stat.S_ISREG(info.st_mode) or os.path.realpath(path) in self._exclude:
                    continue
                found.setdefault((info.st_dev, info.st_ino), (path, info))
        return found

    def _scan(self, *, first: bool) -> bool:
        """Notice new, rotated, truncated and vanished files; return whether positions changed."""
        now = time.monotonic()
        changed = False
        found = self._expand()
        lag = 0
        for file_id, followed in self._files.items():
            if file_id in found:
                path, info = found[file_id]
                followed.path = path
                if followed.gone_since is not None:
                    followed.gone_since = None
                changed |= self._check_truncation(followed, info.st_size)
                lag += max(0, info.st_size - followed.offset)
            elif followed.gone_since is None:
                followed.gone_since = now
                self.metrics.rotations.labels(self.name, "rename").inc()
                log.info(
                    "file rotated or removed; reading it to its end", extra={"path": followed.path}
                )
        for file_id, (path, info) in found.items():
            if file_id not in self._files:
                self._open(path, info, first=first)
                changed = True
                lag += max(0, info.st_size - self._files[file_id].offset)
        if first and self._resume is not None and self.settings.start == "checkpoint":
            changed |= self._find_rotated(now)
        self.metrics.source_lag.labels(self.name).set(lag)
        return changed

    def _open(self, path: str, info: os.stat_result, *, first: bool) -> None:
        """Follow a newly found file: from the start, or where `_first_offset` says at start-up."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as error:
            log.warning("cannot open %s: %s", path, error)
            return
        followed = _Followed(
            path=path,
            fd=fd,
            device=info.st_dev,
            inode=info.st_ino,
            fingerprint="",
            fingerprint_size=0,
            offset=0,
            committed=0,
            framer=LineFramer(self.settings.max_line_bytes),
        )
        followed.refresh_fingerprint(self.settings.fingerprint_bytes)
        if first:
            followed.offset = followed.committed = self._first_offset(followed, info.st_size)
        self._files[followed.file_id] = followed
        log.info("following file", extra={"path": path, "offset": followed.offset})

    def _first_offset(self, followed: _Followed, size: int) -> int:
        """Where a file found at start-up is read from."""
        start = self.settings.start
        if start == "beginning":
            return 0
        if start == "end":
            return size
        position = self._resumed(followed)
        if position is not None and position.offset <= size:
            return position.offset
        return 0

    def _resumed(self, followed: _Followed) -> FilePosition | None:
        """The checkpoint entry for this very file (same inode and first bytes), if any."""
        if self._resume is None:
            return None
        for position in self._resume.files:
            if (position.device, position.inode) != followed.file_id:
                continue
            if followed.starts_with(position.fingerprint, position.fingerprint_size):
                return position
            log.info(
                "inode reused by another file; reading it from the start",
                extra={"path": followed.path},
            )
        return None

    def _find_rotated(self, now: float) -> bool:
        """At start-up, reopen checkpointed files that were rotated out of the patterns, so that
        their unread end is not lost."""
        assert self._resume is not None
        changed = False
        for position in self._resume.files:
            if (position.device, position.inode) in self._files:
                continue
            directory = Path(position.path).parent
            try:
                entries = list(os.scandir(directory))
            except OSError:
                continue
            for entry in entries:
                if entry.inode() != position.inode or not entry.is_file(follow_symlinks=False):
                    continue
                info = entry.stat(follow_symlinks=False)
                if info.st_dev != position.device:
                    continue
                self._open(entry.path, info, first=True)
                followed = self._files.get((info.st_dev, info.st_ino))
                if followed is None:
                    continue
                if self._resumed(followed) is None:
                    # Not the same file after all (its first bytes differ): not ours to read.
                    os.close(self._files.pop(followed.file_id).fd)
                    continue
                followed.gone_since = now
                changed = True
        return changed

    def _check_truncation(self, followed: _Followed, size: int) -> bool:
        """copytruncate: the file is shorter than our offset, or its first bytes changed."""
        if size >= followed.offset and followed.starts_with(
            followed.fingerprint, followed.fingerprint_size
        ):
            return False
        self.metrics.rotations.labels(self.name, "truncate").inc()
        log.info("file truncated; reading it from the start", extra={"path": followed.path})
        followed.refresh_fingerprint(self.settings.fingerprint_bytes)
        followed.offset = followed.committed = 0
        followed.framer = LineFramer(self.settings.max_line_bytes)
        return True

    async def _close_finished(self) -> bool:
        """Close rotated files that are read to the end and quiet for `rotate_wait` seconds."""
        now = time.monotonic()
        wait = self.settings.rotate_wait
        finished = [
            followed
            for followed in self._files.values()
            if followed.gone_since is not None
            and now - max(followed.gone_since, followed.last_growth) >= wait
            and os.fstat(followed.fd).st_size <= followed.offset
        ]
        for followed in finished:
            del self._files[followed.file_id]
            os.close(followed.fd)
            log.info("finished rotated file", extra={"path": followed.path})
            # Its last line will never get a newline now; it is still a line.
            await self._put(followed.framer.flush(), 0, time.monotonic())
        return bool(finished)

    # -- reading ---------------------------------------------------------------------------------

    async def _read_all(self) -> bool:
        """Read a few chunks of every file; return whether some file may have more right now."""
        progressed = False
        # Rotated files first, and the current ones only once those are read to their end: the
        # lines of a rotated file come before those of its successor, and transitions depend on
        # that order (after a restart, both may have a backlog).
        rotated_busy = False
        for followed in sorted(self._files.values(), key=lambda f: f.gone_since is None):
            if rotated_busy and followed.gone_since is None:
                break
            for _ in range(4):
                if not await self._read_once(followed):
                    break
                progressed = True
            else:
                rotated_busy |= followed.gone_since is not None
        return progressed

    async def _read_once(self, followed: _Followed) -> bool:
        """Read one chunk and hand over its complete lines; return whether it was a full one."""
        size = self.settings.read_size
        data = os.pread(followed.fd, size, followed.offset)
        if not data:
            return False
        read_at = time.monotonic()
        followed.last_growth = read_at
        followed.offset += len(data)
        if followed.fingerprint_size < self.settings.fingerprint_bytes:
            followed.refresh_fingerprint(self.settings.fingerprint_bytes)
        framer = followed.framer
        block = framer.feed(data)
        if block:
            # After the last complete record: never inside a line or a multi-line record.
            followed.committed = followed.offset - framer.pending
        await self._put(block, framer.take_too_long(), read_at)
        return len(data) == size

    async def _emit_positions(self) -> None:
        """Tell the decoder that positions changed without new lines (opened, closed, truncated)."""
        await self._put(b"", 0, time.monotonic())

    async def _put(self, data: bytes, too_long: int, read_at: float) -> None:
        """Hand over a block; wait while the decoder's queue is full (the lines stay on disk)."""
        positions = tuple(followed.position() for followed in self._files.values())
        await self.blocks.put(Block(data, too_long, read_at, positions))


def _stderr_file() -> frozenset[str]:
    """The real path of the file our stderr writes to, if it is a regular file."""
    try:
        info = os.fstat(2)
    except OSError:
        return frozenset()
    if not stat.S_ISREG(info.st_mode):
        return frozenset()
    try:
        return frozenset({os.path.realpath("/proc/self/fd/2")})
    except OSError:
        return frozenset()
