"""How the file source follows files through rotation: a rename (the old file read to its end),
copytruncate (the unread part read from the copy, or counted as lost), a copy written over, and
files rotated out of the patterns while the sidecar was down (see `sidecar.sources.files`)."""

from __future__ import annotations

import logging
import os
import stat
import time
from pathlib import Path

from sidecar.core.lines.scan import LineFramer
from sidecar.runtime.metrics import Metrics
from sidecar.sources.followed import Followed, FollowedFiles, fingerprint

#: The file source's logger, as before this module was split out of it.
log = logging.getLogger("sidecar.sources.files")

#: Compressed copies are not read (logrotate's `compress`).
_COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".zip")


class Rotations(FollowedFiles):
    """Rotation and truncation handling of a `FileSource`."""

    metrics: Metrics
    name: str
    #: Real paths never read: the checkpoint, the file our stderr goes to.
    _exclude: frozenset[str]
    #: Files created lately beside ours that no pattern names, oldest first.
    _recent_created: list[str]
    #: Positions changed outside the reading loop: emit them.
    _dirty: bool
    #: Complete lines a truncated file's framer had kept back (`LineFramer.lingering`), read
    #: but not handed over yet: the next block carries them first.
    _kept: list[bytes]

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

    def _check_truncation(self, followed: Followed, size: int) -> bool:
        """copytruncate: the file is shorter than our offset or than we saw it, or its first
        bytes changed."""
        if size >= max(followed.offset, followed.seen_size) and followed.starts_with(
            followed.fingerprint, followed.fingerprint_size
        ):
            return False
        self._truncated(followed)
        return True

    def _truncated(self, followed: Followed) -> None:
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
        else:
            # Lines read and kept back for a stack (the copy would read them again): they go.
            kept = followed.framer.flush(partial=False)
            unread -= len(kept)
            if kept:
                self._kept.append(kept)
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

    def _overwritten(self, followed: Followed) -> None:
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

    def _open_copy(self, followed: Followed) -> Followed | None:
        """copytruncate's copy of `followed`: the file beside it that starts with the same bytes
        and is at least as long as what we handed over, opened to be read from there on."""
        directory = os.path.dirname(followed.path)  # noqa: PTH120
        try:
            entries = list(os.scandir(directory or "."))
        except OSError:
            return None
        best: tuple[int, os.DirEntry[str], Followed | None] | None = None
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

    def _open_later_copies(self, first_copy: str, followed: Followed) -> None:
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

    def _open_rotated(self, path: str, offset: int, original: Followed | None) -> Followed | None:
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

    def _watch_size(self, followed: Followed) -> None:
        """A followed file changed: notice a truncation now, and remember its size and first
        bytes even if we cannot read it yet, so that the next truncation is noticed too (a file
        emptied before we read any of it looks the same as before by its offset alone)."""
        size = os.fstat(followed.fd).st_size
        self._check_truncation(followed, size)
        followed.seen_size = max(followed.seen_size, size)
        if followed.fingerprint_size < min(size, self.settings.fingerprint_bytes):
            self._extend_fingerprint(followed)

    def _extend_fingerprint(self, followed: Followed) -> bool:
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
