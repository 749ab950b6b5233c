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
- **Change detection.** inotify on the directories when available, else polling. Both only decide
  *when* to look; the same scan and read code runs either way, so the results are the same.
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
from typing import Any

from sidecar.checkpoint import Checkpoint, FilePosition
from sidecar.metrics import Metrics
from sidecar.scan import LineFramer
from sidecar.settings import FileSettings
from sidecar.sources import Block

log = logging.getLogger(__name__)

FileId = tuple[int, int]

#: Directory events that can mean "look again" (writes, new files, renames, deletions).
_INOTIFY_EVENTS = (
    "MODIFY",
    "CREATE",
    "MOVED_TO",
    "MOVED_FROM",
    "DELETE",
    "CLOSE_WRITE",
    "ATTRIB",
)


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
        self._inotify: Any = None
        self._woken = asyncio.Event()
        # Dashboards should see zeros, not gaps.
        for kind in ("rename", "truncate"):
            metrics.rotations.labels(name, kind)
        metrics.source_lag.labels(name).set(0)
        #: True once the first scan has opened what exists: `/readyz`'s "sources open".
        self.ready = False
        #: "inotify" or "poll", once running.
        self.mode = ""

    @property
    def followed(self) -> list[FilePosition]:
        """Where each followed file stands (for tests and logs)."""
        return [followed.position() for followed in self._files.values()]

    async def run(self) -> None:
        """Follow the files until cancelled."""
        self._start_watching()
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
                    await self._wait()
                if self._scan(first=False):
                    await self._emit_positions()
        finally:
            self._stop_watching()
            for followed in self._files.values():
                os.close(followed.fd)
            self._files.clear()

    # -- waiting ---------------------------------------------------------------------------------

    def _start_watching(self) -> None:
        """Choose inotify or polling; fail only when inotify was demanded and is missing."""
        mode = self.settings.watch
        if mode != "poll":
            try:
                import inotify_simple  # noqa: PLC0415 - optional

                self._inotify = inotify_simple.INotify()
            except (ImportError, OSError) as error:
                if mode == "inotify":
                    raise RuntimeError(f"inotify is not available: {error}") from error
                log.info("inotify is not available (%s); polling", error)
        if self._inotify is None:
            self.mode = "poll"
            return
        self.mode = "inotify"
        self._watched_dirs: set[str] = set()
        self._add_watches()
        asyncio.get_running_loop().add_reader(self._inotify.fileno(), self._woken.set)

    def _add_watches(self) -> None:
        """Watch the directory of every pattern (directories that appear later, at a rescan)."""
        import inotify_simple  # noqa: PLC0415

        flags = 0
        for event in _INOTIFY_EVENTS:
            flags |= getattr(inotify_simple.flags, event)
        for pattern in self.settings.paths:
            directory = os.path.dirname(os.path.abspath(pattern))  # noqa: PTH100, PTH120
            if directory in self._watched_dirs or glob.has_magic(directory):
                continue
            try:
                self._inotify.add_watch(directory, flags)
            except OSError:
                continue  # not there yet; the safety rescan retries
            self._watched_dirs.add(directory)

    def _stop_watching(self) -> None:
        """Release the inotify descriptor."""
        if self._inotify is not None:
            asyncio.get_running_loop().remove_reader(self._inotify.fileno())
            self._inotify.close()
            self._inotify = None

    async def _wait(self) -> None:
        """Until something may have changed: an inotify event, or the polling interval."""
        if self._inotify is None:
            await asyncio.sleep(self.settings.poll_interval)
            return
        try:
            await asyncio.wait_for(self._woken.wait(), self.settings.inotify_rescan_interval)
        except TimeoutError:
            self._add_watches()
        self._woken.clear()
        # Drain what is pending; the events only say "look", the scan finds out what changed.
        self._inotify.read(timeout=0)

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
        head = os.pread(fd, self.settings.fingerprint_bytes, 0)
        followed = _Followed(
            path=path,
            fd=fd,
            device=info.st_dev,
            inode=info.st_ino,
            fingerprint=fingerprint(head),
            fingerprint_size=len(head),
            offset=0,
            committed=0,
            framer=LineFramer(self.settings.max_line_bytes),
        )
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
            head = os.pread(followed.fd, position.fingerprint_size, 0)
            if len(head) == position.fingerprint_size and fingerprint(head) == position.fingerprint:
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
        head = os.pread(followed.fd, followed.fingerprint_size, 0)
        if size >= followed.offset and fingerprint(head) == followed.fingerprint:
            return False
        self.metrics.rotations.labels(self.name, "truncate").inc()
        log.info("file truncated; reading it from the start", extra={"path": followed.path})
        head = os.pread(followed.fd, self.settings.fingerprint_bytes, 0)
        followed.fingerprint, followed.fingerprint_size = fingerprint(head), len(head)
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
            head = os.pread(followed.fd, self.settings.fingerprint_bytes, 0)
            followed.fingerprint, followed.fingerprint_size = fingerprint(head), len(head)
        framer = followed.framer
        dropped = framer.too_long
        block = framer.feed(data)
        if block:
            # After the last complete record: never inside a line or a multi-line record.
            followed.committed = followed.offset - framer.pending
        await self._put(block, framer.too_long - dropped, read_at)
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
