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

Reads are plain `os.pread` on the event loop: the files are local (an `emptyDir`), each read is at
most `read_size` bytes, and a thread hop per read would cost more than the read.
"""

from __future__ import annotations

import asyncio
import fnmatch
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
from sidecar.sources.watch import Changes, ChangeWatcher

log = logging.getLogger(__name__)

FileId = tuple[int, int]

#: Recently created files remembered as possible copytruncate copies.
_RECENT_CREATED = 256
#: Compressed copies are not read (logrotate's `compress`).
_COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".zip")


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
    #: The largest size seen: at a truncation, what we had not read yet is at most this minus
    #: `committed`.
    seen_size: int = 0
    #: Incremented at each truncation, so that a read loop notices its offset was reset.
    generation: int = 0

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
                if await self._close_finished():
                    await self._emit_positions()
                # Woken by writes only, the files are what they were: no glob, no stat per path
                # (inotify's callback has checked the written files for truncation already).
                rescan = busy
                if not busy:
                    rescan = await self._watcher.wait()
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

    def _open(self, path: str, info: os.stat_result, *, first: bool) -> None:
        """Follow a newly found file: from the start, or where `_first_offset` says at start-up."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as error:
            log.warning("cannot open %s: %s", path, error)
            return
        followed = self._follow(path, fd, info, 0)
        followed.refresh_fingerprint(self.settings.fingerprint_bytes)
        if first:
            followed.offset = followed.committed = self._first_offset(followed, info.st_size)
        else:
            self._opened_new += 1
        self._files[followed.file_id] = followed
        log.info("following file", extra={"path": path, "offset": followed.offset})

    def _follow(self, path: str, fd: int, info: os.stat_result, offset: int) -> _Followed:
        """A file open as `fd`, to read from `offset`; its fingerprint is not read yet."""
        return _Followed(
            path=path,
            fd=fd,
            device=info.st_dev,
            inode=info.st_ino,
            fingerprint="",
            fingerprint_size=0,
            offset=offset,
            committed=offset,
            framer=LineFramer(self.settings.max_line_bytes),
        )

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
        """copytruncate: the file is shorter than our offset or than we saw it, or its first
        bytes changed."""
        if size >= max(followed.offset, followed.seen_size) and followed.starts_with(
            followed.fingerprint, followed.fingerprint_size
        ):
            return False
        self._truncated(followed)
        return True

    def _truncated(self, followed: _Followed) -> None:
        """Read what was unread from the copy, if there is one, else count it; then read the file
        again from its start. A rotated file (a copy, or renamed away) is not truncated but
        written over: see `_overwritten`."""
        if followed.gone_since is not None:
            self._overwritten(followed)
            return
        self.metrics.rotations.labels(self.name, "truncate").inc()
        unread = max(followed.seen_size, followed.offset) - followed.committed
        copy = self._open_copy(followed)
        if copy is not None:
            unread -= max(0, os.fstat(copy.fd).st_size - followed.committed)
        if unread > 0:
            self.metrics.bytes_lost.labels(self.name, "truncated").inc(unread)
            log.warning(
                "file truncated before it was read to its end; unread bytes lost",
                extra={"path": followed.path, "bytes": unread},
            )
        log.info(
            "file truncated; reading it from the start",
            extra={"path": followed.path, "copy": None if copy is None else copy.path},
        )
        followed.refresh_fingerprint(self.settings.fingerprint_bytes)
        followed.offset = followed.committed = followed.seen_size = 0
        followed.framer = LineFramer(self.settings.max_line_bytes)
        followed.generation += 1
        self._dirty = True

    def _overwritten(self, followed: _Followed) -> None:
        """A rotated file whose first bytes changed: the next `cp app.log app.log.1` wrote over
        the previous copy in place (same inode, new content). It is not the file we were reading
        any more: what we had not read of it is lost (counted), and its new content is the copy of
        the next truncation, opened afresh by `_open_copy` (never read on from our old offset,
        which would hand over the middle of lines already read from the log)."""
        unread = max(followed.seen_size, followed.offset) - followed.committed
        if unread > 0:
            self.metrics.bytes_lost.labels(self.name, "truncated").inc(unread)
            log.warning(
                "copy written over before it was read to its end; unread bytes lost",
                extra={"path": followed.path, "bytes": unread},
            )
        del self._files[followed.file_id]
        os.close(followed.fd)
        self._dirty = True

    def _open_copy(self, followed: _Followed) -> _Followed | None:
        """copytruncate's copy of `followed`: the file beside it that starts with the same bytes
        and is at least as long as what we handed over, opened to be read from there on."""
        directory = os.path.dirname(followed.path)  # noqa: PTH120
        try:
            entries = list(os.scandir(directory or "."))
        except OSError:
            return None
        best: tuple[int, os.DirEntry[str], _Followed | None] | None = None
        for entry in entries:
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            held = self._files.get((info.st_dev, info.st_ino))
            if held is not None and (
                held.gone_since is None or held.starts_with(held.fingerprint, held.fingerprint_size)
            ):
                continue  # a file we follow, still what we read (not a copy written over it)
            if (
                info.st_size < max(followed.committed, followed.fingerprint_size, 1)
                or os.path.realpath(entry.path) in self._exclude
                or (best is not None and best[0] >= info.st_size)
            ):
                continue
            try:
                with open(entry.path, "rb") as candidate:  # noqa: PTH123
                    head = candidate.read(followed.fingerprint_size)
            except OSError:
                continue
            if fingerprint(head) == followed.fingerprint:
                best = (info.st_size, entry, held)
        if best is None:
            return None
        _, entry, held = best
        if held is not None:
            self._overwritten(held)
        copy = self._open_rotated(entry.path, followed.committed, followed)
        if copy is not None:
            self._open_later_copies(entry.path, followed)
        return copy

    def _open_later_copies(self, first_copy: str, followed: _Followed) -> None:
        """The copies created after `first_copy`: generations that were copied and truncated
        away before we noticed the first truncation. Each is read whole, oldest first, except a
        copy of what `followed` holds now (copied, not truncated yet: it is read from the file)."""
        recent, self._recent_created = self._recent_created, []
        if first_copy not in recent:
            return
        later = recent[len(recent) - recent[::-1].index(first_copy) :]
        for path in dict.fromkeys(later):
            if path.endswith(_COMPRESSED):
                continue
            try:
                info = os.stat(path)  # noqa: PTH116
            except OSError:
                continue
            if (
                stat.S_ISREG(info.st_mode)
                and (info.st_dev, info.st_ino) not in self._files
                and os.path.realpath(path) not in self._exclude
            ):
                copy = self._open_rotated(path, 0, None)
                if copy is not None and followed.starts_with(
                    copy.fingerprint, copy.fingerprint_size
                ):
                    os.close(self._files.pop(copy.file_id).fd)

    def _open_rotated(self, path: str, offset: int, original: _Followed | None) -> _Followed | None:
        """Open a copy to read from `offset` to its end (it starts with `original`'s bytes)."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        info = os.fstat(fd)
        copy = self._follow(path, fd, info, offset)
        copy.gone_since, copy.seen_size = time.monotonic(), info.st_size
        if original is None:
            copy.refresh_fingerprint(self.settings.fingerprint_bytes)
        else:
            copy.fingerprint = original.fingerprint
            copy.fingerprint_size = original.fingerprint_size
            if not copy.starts_with(original.fingerprint, original.fingerprint_size):
                os.close(fd)  # replaced between the look and the open
                return None
        self._files[copy.file_id] = copy
        log.info("reading a copytruncate copy", extra={"path": path, "offset": offset})
        return copy

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

    def _watch_size(self, followed: _Followed) -> None:
        """A followed file changed: notice a truncation now, and remember its size and first
        bytes even if we cannot read it yet, so that the next truncation is noticed too (a file
        emptied before we read any of it looks the same as before by its offset alone)."""
        size = os.fstat(followed.fd).st_size
        self._check_truncation(followed, size)
        followed.seen_size = max(followed.seen_size, size)
        if followed.fingerprint_size < min(size, self.settings.fingerprint_bytes):
            self._extend_fingerprint(followed)

    def _extend_fingerprint(self, followed: _Followed) -> bool:
        """Fingerprint more of a short file's first bytes, unless they no longer start as before
        (the writer, a thread of its own, may truncate it at any moment): then it was truncated.
        Return whether it was."""
        head = os.pread(followed.fd, self.settings.fingerprint_bytes, 0)
        if fingerprint(head[: followed.fingerprint_size]) != followed.fingerprint:
            self._truncated(followed)
            return True
        followed.fingerprint, followed.fingerprint_size = fingerprint(head), len(head)
        return False

    def _follow_rename(self, old: str, new: str, now: float) -> None:
        """A rename: the file now at `new` is followed there; if we never opened it and it comes
        from a name the patterns give (created and rotated before we looked), it is opened.

        The file is identified by what `new` holds now, not by `old`: a path names several
        generations one after the other, and this event may be older than our last scan."""
        try:
            info = os.stat(new)  # noqa: PTH116
        except OSError:
            return
        followed = self._files.get((info.st_dev, info.st_ino))
        if followed is None:
            if (
                not self._named(old)
                or not stat.S_ISREG(info.st_mode)
                or os.path.realpath(new) in self._exclude
            ):
                return
            self._open(new, info, first=False)
            followed = self._files.get((info.st_dev, info.st_ino))
            if followed is None:
                return
            self._dirty = True
        followed.path = new
        if followed.gone_since is None and not self._named(new):
            followed.gone_since = now
            self.metrics.rotations.labels(self.name, "rename").inc()
            self._dirty = True

    def _named(self, path: str) -> bool:
        """Whether the patterns name `path` (as `glob` would: a `*` does not match a leading
        dot)."""
        for pattern in self.settings.paths:
            if not glob.has_magic(pattern):
                if os.path.abspath(pattern) == os.path.abspath(path):  # noqa: PTH100
                    return True
                continue
            name, name_pattern = os.path.basename(path), os.path.basename(pattern)  # noqa: PTH119
            if name.startswith(".") and not name_pattern.startswith("."):
                continue
            if fnmatch.fnmatchcase(os.path.abspath(path), os.path.abspath(pattern)):  # noqa: PTH100
                return True
        return False

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
        return progressed

    async def _read_once(self, followed: _Followed) -> bool:
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
        followed.offset += len(data)
        followed.seen_size = max(followed.seen_size, followed.offset)
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
