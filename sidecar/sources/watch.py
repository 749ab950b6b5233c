"""When the file source looks again, and what inotify says changed.

inotify events are read as soon as the kernel has them (a reader callback on the event loop), not
when the file source next waits: a source blocked on a full queue must still see a new file the
moment it is created, and open it, or a rename rotation may take it away before it is ever read.
Each batch is summarised (`summarize`, pure) and handed to the source's callback.

Two inotify instances split the events by what they cost to miss. Directory entries (a file
created, renamed or removed) come rarely and must be seen at once, so that instance is always
read. Writes come with every `write()` of the controller, and a controller that does not buffer
its log writes once per line: waking for each one cost the daemon 0.2-1 ms of Python per line.
So with a `settle_time` (0.1 s by default: see `FileSettings.settle_time`), after a batch of
writes is handed over, the writes instance is not listened to for that long; what the controller
wrote meanwhile is then read at once, N writes for the price of one wake-up (the kernel merges the
queued identical events). A quiet file is read at its first write, without the wait.

Without inotify (the `inotify_simple` package, or a kernel that allows another instance), polling
does what it can: a timer calls the same callback every `poll_interval`, whatever the source is
doing. A file created and rotated away within one interval is invisible to polling. `auto` falls
back to polling; `inotify` fails without it.
"""

from __future__ import annotations

import asyncio
import glob
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sidecar.core.settings import FileSettings

log = logging.getLogger(__name__)

# The kernel's inotify mask bits (linux/inotify.h): a stable ABI, named here so that the pure
# summary does not need the optional package.
_MODIFY = 0x2
_ATTRIB = 0x4
_CLOSE_WRITE = 0x8
_MOVED_FROM = 0x40
_MOVED_TO = 0x80
_CREATE = 0x100
_DELETE = 0x200
_Q_OVERFLOW = 0x4000
_ISDIR = 0x40000000

#: Directory entry events: the patterns may name other files now. Always read at once.
_ENTRIES = _MOVED_FROM | _MOVED_TO | _CREATE | _DELETE
#: Content events: a file was written (or its attributes changed). Read at most once per
#: `settle_time` while they keep coming.
_CONTENT = _MODIFY | _ATTRIB | _CLOSE_WRITE

#: (watch descriptor, mask, cookie, name): what inotify_simple's `Event` holds.
RawEvent = tuple[int, int, int, str]


@dataclass(frozen=True, slots=True)
class Changes:
    """What one batch of events says, by full path, each tuple in the order it happened."""

    #: Files created in a watched directory: each is a new file (a new generation of a log).
    created: tuple[str, ...] = ()
    #: (old path, new path) of files renamed within watched directories: rotations.
    renamed: tuple[tuple[str, str], ...] = ()
    #: Files renamed in from an unwatched place: new files too.
    moved_in: tuple[str, ...] = ()
    #: Files written, truncated or removed.
    modified: frozenset[str] = frozenset()
    #: Anything may have changed (a poll tick, a safety rescan, an overflowed event queue).
    rescan: bool = False
    #: Files deleted or renamed away (also in `modified`).
    removed: tuple[str, ...] = ()
    #: From directory entry events (created, renamed, removed): the patterns may name other
    #: files now, so the source scans them again. Writes alone never make it expand its globs.
    entries: bool = False


def summarize(
    events: Iterable[RawEvent], directories: Mapping[int, str], *, entries: bool = False
) -> Changes:
    """Turn a batch of raw inotify events into `Changes` (renames paired by their cookie);
    `entries`: the batch is from the directory entries instance."""
    created: list[str] = []
    renamed: list[tuple[str, str]] = []
    moved_in: list[str] = []
    modified: set[str] = set()
    removed: list[str] = []
    moved_from: dict[int, str] = {}
    rescan = False
    for wd, mask, cookie, name in events:
        if mask & _Q_OVERFLOW:
            rescan = True
            continue
        directory = directories.get(wd)
        if directory is None or mask & _ISDIR or not name:
            continue
        path = os.path.join(directory, name)  # noqa: PTH118
        if mask & _CREATE:
            created.append(path)
        elif mask & _MOVED_FROM:
            moved_from[cookie] = path
            modified.add(path)
            removed.append(path)
        elif mask & _MOVED_TO:
            old = moved_from.pop(cookie, None)
            if old is None:
                moved_in.append(path)
            else:
                renamed.append((old, path))
        else:
            modified.add(path)
            if mask & _DELETE:
                removed.append(path)
    return Changes(
        tuple(created),
        tuple(renamed),
        tuple(moved_in),
        frozenset(modified),
        rescan,
        tuple(removed),
        entries,
    )


class ChangeWatcher:
    """Reports changes to the files named by `settings.paths` as they happen, and lets the file
    source wait for the next one."""

    def __init__(
        self,
        settings: FileSettings,
        on_changes: Callable[[Changes], None],
        *,
        may_settle: Callable[[], bool] | None = None,
    ) -> None:
        """`may_settle`: whether writes may wait out the settle time now (the file source says
        no while a file is too short to be told apart from its next generation by its first
        bytes: then each write is looked at, so that a truncation is not missed)."""
        self.settings = settings
        self._on_changes = on_changes
        self._may_settle = may_settle
        #: Directory entry events (always listened to) and content events (paused while settling).
        self._inotify: Any = None
        self._content: Any = None
        self._watched_dirs: dict[int, str] = {}
        self._content_dirs: dict[int, str] = {}
        self._woken = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        #: While set, the content instance is not listened to: the settle time after a batch.
        self._settling: asyncio.TimerHandle | None = None
        #: The safety rescan found nothing waiting: `wait` says so, and the source scans.
        self._rescan_due = False
        #: What the callback raised: re-raised by `wait`, so that the source task fails loudly.
        self._failure: BaseException | None = None
        #: "inotify" or "poll", once started.
        self.mode = ""

    def start(self) -> None:
        """Choose inotify or polling; fail only when inotify was demanded and is missing.

        Raises:
            RuntimeError: `watch: inotify` and inotify is not available.
        """
        mode = self.settings.watch
        if mode != "poll":
            try:
                import inotify_simple  # noqa: PLC0415 - optional

                self._inotify = inotify_simple.INotify()
                self._content = inotify_simple.INotify()
            except (ImportError, OSError) as error:
                if self._inotify is not None:
                    self._inotify.close()
                    self._inotify = None
                if mode == "inotify":
                    raise RuntimeError(f"inotify is not available: {error}") from error
                log.info("inotify is not available (%s); polling", error)
        if self._inotify is None:
            self.mode = "poll"
            self._schedule_tick()
            return
        self.mode = "inotify"
        self._add_watches()
        loop = asyncio.get_running_loop()
        loop.add_reader(self._inotify.fileno(), self._on_readable)
        loop.add_reader(self._content.fileno(), self._on_content)

    def stop(self) -> None:
        """Release the inotify descriptor and the polling timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._settling is not None:
            self._settling.cancel()
            self._settling = None
        loop = asyncio.get_running_loop()
        for instance in (self._inotify, self._content):
            if instance is not None:
                loop.remove_reader(instance.fileno())
                instance.close()
        self._inotify = self._content = None

    def discard_pending(self) -> None:
        """Forget the events queued so far: the first scan is about to see their result."""
        for instance in (self._inotify, self._content):
            if instance is not None:
                instance.read(timeout=0)

    def next_look(self) -> float | None:
        """When the source next looks at the files without a wake-up of its own
        (`time.monotonic()`, the loop's clock): the end of the settle time under way, or the next
        poll; None while a write is handed over as it comes."""
        if self._inotify is None:
            return time.monotonic() + self.settings.poll_interval
        return None if self._settling is None else self._settling.when()

    async def wait(self) -> bool:
        """Until something may have changed: an inotify event, or the polling interval. Return
        whether the source should scan its patterns again (polling, the safety rescan); a batch
        of events has been handed to the callback already, which scans when entries changed.

        Raises:
            BaseException: what the change callback raised.
        """
        self._raise_failure()
        if self._inotify is None:
            await asyncio.sleep(self.settings.poll_interval)
            self._raise_failure()
            return True
        if not self._woken.is_set():
            try:
                # Not `asyncio.wait_for`, which in Python 3.11 can swallow a cancellation.
                async with asyncio.timeout(self.settings.inotify_rescan_interval):
                    await self._woken.wait()
            except TimeoutError:
                self._add_watches()
                self._rescan_due = True
        self._woken.clear()
        self._raise_failure()
        due, self._rescan_due = self._rescan_due, False
        return due

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _notify(self, changes: Changes) -> None:
        """Hand `changes` to the source; keep what it raises for `wait` (a loop callback's
        exception would only be logged)."""
        if self._failure is not None:
            return
        try:
            self._on_changes(changes)
        except Exception as error:  # re-raised in the source task by `wait`
            self._failure = error
        self._woken.set()

    def _on_readable(self) -> None:
        """The kernel has events: read them all now (the queue must not wait for the source)."""
        if self._inotify is None:
            return
        changes = summarize(self._inotify.read(timeout=0), self._watched_dirs, entries=True)
        # The writes waiting out the settle time go with it: a rotation is judged on what the
        # files hold now (a copytruncate's truncation must not be seen after the next copy).
        written = self._content.read(timeout=0) if self._content is not None else ()
        if written:
            content = summarize(written, self._content_dirs)
            changes = Changes(
                changes.created,
                changes.renamed,
                changes.moved_in,
                changes.modified | content.modified,
                changes.rescan or content.rescan,
                changes.removed,
                entries=True,
            )
        self._notify(changes)
        if self._settling is not None and self._may_settle is not None and not self._may_settle():
            # A rotation began: the writes that follow are looked at as they come.
            self._settling.cancel()
            self._settling = None
            if self._content is not None:
                asyncio.get_running_loop().add_reader(self._content.fileno(), self._on_content)

    def _on_content(self) -> None:
        """Files were written: hand the batch over, then stop listening for `settle_time` so
        that the writes meanwhile are handled together (see the module's docstring)."""
        if self._content is None:
            return
        self._notify(summarize(self._content.read(timeout=0), self._content_dirs))
        settle = self.settings.settle_time
        if (
            settle > 0
            and self._content is not None
            and (self._may_settle is None or self._may_settle())
        ):
            loop = asyncio.get_running_loop()
            loop.remove_reader(self._content.fileno())
            self._settling = loop.call_later(settle, self._settled)

    def _settled(self) -> None:
        """The settle time is over: hand over what was written meanwhile (and settle again), or,
        when nothing was, listen again so that the next write is handled at once."""
        self._settling = None
        if self._content is None:
            return
        events = self._content.read(timeout=0)
        if events:
            self._notify(summarize(events, self._content_dirs))
            if self._content is not None and (self._may_settle is None or self._may_settle()):
                self._settling = asyncio.get_running_loop().call_later(
                    self.settings.settle_time, self._settled
                )
                return
        if self._content is not None:
            asyncio.get_running_loop().add_reader(self._content.fileno(), self._on_content)

    def _schedule_tick(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(self.settings.poll_interval, self._tick)

    def _tick(self) -> None:
        """Polling: look at everything every `poll_interval`, even while the source waits."""
        self._notify(Changes(rescan=True))
        self._schedule_tick()

    def _add_watches(self) -> None:
        """Watch the directory of every pattern (directories that appear later, at a rescan)."""
        known = set(self._watched_dirs.values())
        for pattern in self.settings.paths:
            directory = os.path.dirname(os.path.abspath(pattern))  # noqa: PTH100, PTH120
            if directory in known or glob.has_magic(directory):
                continue
            try:
                wd = self._inotify.add_watch(directory, _ENTRIES)
            except OSError:
                continue  # not there yet; the safety rescan retries
            try:
                content_wd = self._content.add_watch(directory, _CONTENT)
            except OSError:
                self._inotify.rm_watch(wd)
                continue
            self._watched_dirs[wd] = directory
            self._content_dirs[content_wd] = directory
            known.add(directory)
