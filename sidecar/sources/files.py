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
- **New files are opened at once**, whatever the reading side is doing: inotify events are handled
  as they arrive (`sidecar.sources.watch`), even while the source waits for room in a full queue,
  and a created file is opened then. An open file stays readable after it is renamed, replaced or
  deleted, so every generation is read to its end, in order, once the queue has room. A file
  renamed away before we saw it is found under its new name (the rename's `IN_MOVED_TO`). One
  created and gone before we could open it is counted (`files_lost`); its bytes are unknowable.
  Polling runs the same scan on a timer, also while the source waits, but cannot see a file created
  and rotated away within one interval.
- **copytruncate.** A file shorter than our offset, or whose first bytes changed (it was truncated
  and written again before we looked), was truncated. What we had not read yet is read from the
  copy, found in the same directory by the fingerprint of its first bytes; the file is read again
  from its start (`rotations{kind="truncate"}`). Without a copy, or when the copy is shorter than
  what we had seen, the unread bytes are counted (`bytes_lost{cause="truncated"}`). Before each read
  is handed over, the file's first bytes are checked: a truncated file that grew past our offset
  is never read from the middle of its new content, so no line is handed over twice. Lines written
  between the copy and the truncation are lost, as with every log shipper. A copy made over the
  previous one (`cp app.log app.log.1`: same inode, new bytes) may still be open, being read or
  waiting out `rotate_wait`: its changed first bytes show it was written over; it is dropped, what
  was unread of it counted in `bytes_lost` (truly lost), and it is then found as the new copy.
- **Change detection.** inotify on the directories when available, else polling. Both run the same
  scan and read code, so the results are the same, within polling's limit above.
- **Positions.** Each block carries every file's offset just past the last complete line handed
  over. The daemon checkpoints those offsets only once the Events from the block are recorded.

Opening a file and its identity are `sidecar.sources.followed`; rotation and truncation,
`sidecar.sources.rotation`.

Reads are plain `os.pread` on the event loop: the files are local (an `emptyDir`), each read is at
most `read_size` bytes, and a thread hop per read would cost more than the read.
"""

from __future__ import annotations

import asyncio
import glob
import logging
import os
import stat
import time

from sidecar.core.settings import FileSettings
from sidecar.model import FilePosition
from sidecar.runtime.checkpoints import Checkpoint
from sidecar.runtime.metrics import Metrics
from sidecar.sources import Block
from sidecar.sources.followed import FileId, Followed
from sidecar.sources.rotation import Rotations
from sidecar.sources.watch import Changes, ChangeWatcher

log = logging.getLogger(__name__)

#: Recently created files remembered as possible copytruncate copies.
_RECENT_CREATED = 256


class FileSource(Rotations):
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
        self._files: dict[FileId, Followed] = {}
        self._watcher = ChangeWatcher(settings, self._on_changes, may_settle=self._may_settle)
        #: Files the patterns named when created (inotify), and new files we opened: their
        #: difference is what was created and gone before it could be opened.
        self._created = 0
        self._opened_new = 0
        self._lost_files = 0
        #: Files created lately beside ours that no pattern names, oldest first: copytruncate's
        #: copies, when several rotations happened before we noticed the first one.
        self._recent_created: list[str] = []
        #: Positions changed outside the reading loop (a change callback): emit them.
        self._dirty = False
        self._kept: list[bytes] = []
        #: Directory entries the patterns name changed (or the safety rescan is due): the next
        #: turn of `run` scans them. Writes alone never expand the globs.
        self._rescan_due = False
        #: `time.monotonic()` when a file was last created or renamed beside ours.
        self._rotated_at = -float("inf")
        # Dashboards should see zeros, not gaps.
        for kind in ("rename", "truncate"):
            metrics.rotations.labels(name, kind)
        metrics.files_lost.labels(name)
        metrics.bytes_lost.labels(name, "truncated")
        #: The lag gauge's child, looked up once: it is set at every wake-up.
        self._lag = metrics.source_lag.labels(name)
        self._lag.set(0)
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
            self._watcher.discard_pending()
            self._scan(first=True)
            self.ready = True
            await self._emit_positions()
            while True:
                # A busy file does not postpone the scan: a new or rotated file is noticed
                # after at most a few reads of each followed file.
                busy = await self._read_all()
                linger = await self._release_lingering()
                if await self._close_finished():
                    await self._emit_positions()
                # Woken by writes only, the files are what they were: no glob, no stat per path
                # (inotify's callback has checked the written files for truncation already).
                rescan = busy
                if not busy:
                    rescan = await self._wait_or_linger(linger)
                rescan |= self._rescan_due
                self._rescan_due = False
                if rescan:
                    changed = self._scan(first=False)
                else:
                    changed = False
                    self._set_lag()
                changed |= self._dirty
                self._dirty = False
                if changed:
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
        for file_id, followed in list(self._files.items()):
            if file_id in found:
                path, info = found[file_id]
                followed.path = path
                if followed.gone_since is not None:
                    followed.gone_since = None
                generation = followed.generation
                self._watch_size(followed)
                changed |= followed.generation != generation
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
        self._lag.set(lag)
        return changed

    def _set_lag(self) -> None:
        """The lag without a scan: the bytes seen but not read yet, of the files we follow."""
        lag = sum(
            max(0, followed.seen_size - followed.offset)
            for followed in self._files.values()
            if followed.gone_since is None
        )
        self._lag.set(lag)

    # -- changes as they happen --------------------------------------------------------------------

    def _on_changes(self, changes: Changes) -> None:
        """What the watcher saw, handled now even if the reading loop waits for queue room: open
        new and renamed-away files before they can disappear, notice truncations."""
        if not self.ready:
            return
        now = time.monotonic()
        self._recent_created.extend(
            path
            for path in changes.created
            if not self._named(path) and not os.path.basename(path).startswith(".")  # noqa: PTH119
        )
        del self._recent_created[:-_RECENT_CREATED]
        if any(
            self._rotation_sign(path)
            for path in (*changes.created, *changes.moved_in, *(new for _, new in changes.renamed))
        ):
            # A rotation is under way: writes are looked at as they come (`_may_settle`).
            self._rotated_at = now
        for old, new in changes.renamed:
            self._follow_rename(old, new, now)
        self._created += sum(
            1
            for path in (*changes.created, *changes.moved_in)
            if self._named(path) and os.path.realpath(path) not in self._exclude
        )
        # A file the patterns name was created, renamed or removed: the run loop expands the
        # globs before its next read. Other names (the checkpoint's temporary file) do not make
        # it. Creations and renames are scanned for at once, as ever: a copytruncate copy's
        # creation is when the log's size and first bytes must be seen.
        if changes.entries and not self._rescan_due:
            self._rescan_due = any(
                self._named(path)
                for path in (
                    *changes.created,
                    *changes.moved_in,
                    *(path for pair in changes.renamed for path in pair),
                    *changes.removed,
                )
            )
        # Only entries that may be ours or a rotation's: the checkpoint beside the log (its
        # temporary file created, then renamed over it, every write) is not worth a scan.
        if changes.rescan or any(
            self._named(path) or self._rotation_sign(path)
            for path in (
                *changes.created,
                *changes.moved_in,
                *(path for pair in changes.renamed for path in pair),
            )
        ):
            self._dirty |= self._scan(first=False)
        else:
            for followed in list(self._files.values()):
                if followed.gone_since is None and followed.path in changes.modified:
                    self._watch_size(followed)
        self._count_lost_files()

    def _may_settle(self) -> bool:
        """Whether writes may wait out the settle time. Not while a file we follow is shorter
        than its fingerprint (just created or truncated): its first bytes do not tell it from
        its next generation yet, so a truncation and a regrowth within the settle time could
        pass unseen. Nor while a rotation is under way (a rotated file or a copy is still open,
        `rotate_wait`): in a storm of rotations each truncation must be seen as it happens, as
        before the settle time existed. Then each write is looked at."""
        if time.monotonic() - self._rotated_at < self.settings.rotate_wait:
            return False
        limit = self.settings.fingerprint_bytes
        return all(
            followed.gone_since is None and followed.fingerprint_size >= limit
            for followed in self._files.values()
        )

    def _rotation_sign(self, path: str) -> bool:
        """A file created or renamed beside ours that may be a rotation's (a copy, a renamed
        generation): not a hidden one (the checkpoint's temporary file) nor one we never read
        (the checkpoint itself)."""
        return (
            not os.path.basename(path).startswith(".")  # noqa: PTH119
            and os.path.realpath(path) not in self._exclude
        )

    def _count_lost_files(self) -> None:
        """Files the patterns named at creation, never opened: created and gone too soon."""
        lost = self._created - self._opened_new
        if lost > self._lost_files:
            self.metrics.files_lost.labels(self.name).inc(lost - self._lost_files)
            log.warning(
                "file created and gone before it could be opened; its lines are lost",
                extra={"files": lost - self._lost_files},
            )
            self._lost_files = lost

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
        # Rotated files are read one after the other, oldest first, for the same reason.
        for followed in sorted(self._files.values(), key=lambda f: f.gone_since is None):
            if followed.file_id not in self._files:
                continue  # closed meanwhile
            generation = followed.generation
            for _ in range(4):
                if not await self._read_once(followed) or followed.generation != generation:
                    break
                progressed = True
            else:
                if followed.gone_since is not None:
                    break
            if followed.gone_since is not None:
                # Its successor's lines come next: the rotated file's last line goes before them.
                await self._release(followed, time.monotonic())
        return progressed

    async def _read_once(self, followed: Followed) -> bool:
        """Read one chunk and hand over its complete lines; return whether it was a full one."""
        size = self.settings.read_size
        data = os.pread(followed.fd, size, followed.offset)
        if not data:
            if followed.gone_since is None:
                self._check_truncation(followed, os.fstat(followed.fd).st_size)
            return False
        if not followed.starts_with(followed.fingerprint, followed.fingerprint_size):
            # Truncated and written again since we last looked: `data` is from the middle of
            # other lines.
            self._truncated(followed)
            return False
        if followed.fingerprint_size < self.settings.fingerprint_bytes and self._extend_fingerprint(
            followed
        ):
            return False
        read_at = time.monotonic()
        followed.last_growth = read_at
        followed.release_after = max(read_at + self.settings.linger, self._watcher.next_look() or 0)
        followed.offset += len(data)
        followed.seen_size = max(followed.seen_size, followed.offset)
        framer = followed.framer
        block = framer.feed(data)
        if block:
            # After the last complete record: never inside a line or a multi-line record.
            followed.committed = followed.offset - framer.pending
        await self._put(block, framer.take_too_long(), read_at)
        return len(data) == size

    async def _release_lingering(self) -> float | None:
        """Hand over the lines kept back for a stack that may follow them (`LineFramer.lingering`)
        of files that have not grown for `linger` seconds: the stack is not coming. Return the
        seconds until the next such file is due (None: no line is kept back). Checked after every
        read, so a busy file never keeps another's line back.

        A kept line also waits for the source's next look after its read, the settled read while
        writes settle, or the next poll (`Followed.release_after`, `FileSettings.linger`):
        released in between, it would cost a wake-up and a read of its own, as much as the read
        that the settle time or the polling saves, for each read of a file written steadily."""
        now = time.monotonic()
        due: float | None = None
        for followed in list(self._files.values()):
            if not followed.framer.lingering:
                continue
            left = followed.release_after - now
            if left > 0:
                due = left if due is None else min(due, left)
                continue
            await self._release(followed, now)
        return due

    async def _release(self, followed: Followed, now: float) -> None:
        """Hand over the lines `followed`'s framer keeps back for a stack; not for a file dropped
        meanwhile (a copy written over: what it held is counted lost)."""
        if self._files.get(followed.file_id) is not followed:
            return
        framer = followed.framer
        block = framer.release()
        if block:
            followed.committed = followed.offset - framer.pending
            await self._put(block, 0, now)

    async def _wait_or_linger(self, linger: float | None) -> bool:
        """`self._watcher.wait()`, for at most `linger` seconds when a line is kept back."""
        if linger is None:
            return await self._watcher.wait()
        try:
            # Not `asyncio.wait_for`, which in Python 3.11 can swallow a cancellation.
            async with asyncio.timeout(linger):
                return await self._watcher.wait()
        except TimeoutError:
            return False

    async def _emit_positions(self) -> None:
        """Tell the decoder that positions changed without new lines (opened, closed, truncated)."""
        await self._put(b"", 0, time.monotonic())

    async def _put(self, data: bytes, too_long: int, read_at: float) -> None:
        """Hand over a block; wait while the decoder's queue is full (the lines stay on disk)."""
        positions = tuple(followed.position() for followed in self._files.values())
        while self._kept:
            await self.blocks.put(Block(self._kept.pop(0), 0, read_at, positions))
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
