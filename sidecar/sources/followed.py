"""A followed file: its identity (device, inode and a fingerprint of its first bytes), where
it is read from, and how the file source opens one (from the start, or where the checkpoint
says at start-up); see `sidecar.sources.files` for the whole source."""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import logging
import os
import time
from dataclasses import dataclass, field

from sidecar.core.lines.scan import LineFramer
from sidecar.core.settings import FileSettings
from sidecar.model import FilePosition
from sidecar.runtime.checkpoints import Checkpoint

#: The file source's logger, as before this module was split out of it.
log = logging.getLogger("sidecar.sources.files")

FileId = tuple[int, int]


def fingerprint(data: bytes) -> str:
    """The hash that identifies a file by its first bytes."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclass(slots=True)
class Followed:
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
    #: `time.monotonic()` from which lines kept back for a stack may go without more bytes: the
    #: linger after the last growth, or the source's next look if that is later
    #: (`FileSource._release_lingering`).
    release_after: float = 0.0
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


class FollowedFiles:
    """The files a `FileSource` follows, by identity, and how one is opened."""

    settings: FileSettings
    _resume: Checkpoint | None
    _files: dict[FileId, Followed]
    #: New files opened (not at start-up): `FileSource` counts the files lost from it.
    _opened_new: int

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

    def _follow(self, path: str, fd: int, info: os.stat_result, offset: int) -> Followed:
        """A file open as `fd`, to read from `offset`; its fingerprint is not read yet."""
        return Followed(
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

    def _first_offset(self, followed: Followed, size: int) -> int:
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

    def _resumed(self, followed: Followed) -> FilePosition | None:
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
