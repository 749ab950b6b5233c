"""When the file source looks again, and what inotify says changed.

inotify events are read as soon as the kernel has them (a reader callback on the event loop), not
when the file source next waits: a source blocked on a full queue must still see a new file the
moment it is created, and open it, or a rename rotation may take it away before it is ever read.
Each batch is summarised (`summarize`, pure) and handed to the source's callback.

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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sidecar.settings import FileSettings

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

#: Directory events that can mean "look again" (writes, new files, renames, deletions).
_WATCHED = _MODIFY | _ATTRIB | _CLOSE_WRITE | _MOVED_FROM | _MOVED_TO | _CREATE | _DELETE

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


def summarize(events: Iterable[RawEvent], directories: Mapping[int, str]) -> Changes:
    """Turn a batch of raw inotify events into `Changes` (renames paired by their cookie)."""
    created: list[str] = []
    renamed: list[tuple[str, str]] = []
    moved_in: list[str] = []
    modified: set[str] = set()
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
        elif mask & _MOVED_TO:
            old = moved_from.pop(cookie, None)
            if old is None:
                moved_in.append(path)
            else:
                renamed.append((old, path))
        else:
            modified.add(path)
    return Changes(tuple(created), tuple(renamed), tuple(moved_in), frozenset(modified), rescan)


class ChangeWatcher:
    """Reports changes to the files named by `settings.paths` as they happen, and lets the file
    source wait for the next one."""

    def __init__(self, settings: FileSettings, on_changes: Callable[[Changes], None]) -> None:
        self.settings = settings
        self._on_changes = on_changes
        self._inotify: Any = None
        self._watched_dirs: dict[int, str] = {}
        self._woken = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
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
            except (ImportError, OSError) as error:
                if mode == "inotify":
                    raise RuntimeError(f"inotify is not available: {error}") from error
                log.info("inotify is not available (%s); polling", error)
        if self._inotify is None:
            self.mode = "poll"
            self._schedule_tick()
            return
        self.mode = "inotify"
        self._add_watches()
        asyncio.get_running_loop().add_reader(self._inotify.fileno(), self._on_readable)

    def stop(self) -> None:
        """Release the inotify descriptor and the polling timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._inotify is not None:
            asyncio.get_running_loop().remove_reader(self._inotify.fileno())
            self._inotify.close()
            self._inotify = None

    def discard_pending(self) -> None:
        """Forget the events queued so far: the first scan is about to see their result."""
        if self._inotify is not None:
            self._inotify.read(timeout=0)

    async def wait(self) -> None:
        """Until something may have changed: an inotify event, or the polling interval.

        Raises:
            BaseException: what the change callback raised.
        """
        self._raise_failure()
        if self._inotify is None:
            await asyncio.sleep(self.settings.poll_interval)
            self._raise_failure()
            return
        try:
            # Not `asyncio.wait_for`, which in Python 3.11 can swallow a cancellation.
            async with asyncio.timeout(self.settings.inotify_rescan_interval):
                await self._woken.wait()
        except TimeoutError:
            self._add_watches()
        self._woken.clear()
        self._raise_failure()

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
        events = self._inotify.read(timeout=0)
        self._notify(summarize(events, self._watched_dirs))

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
                wd = self._inotify.add_watch(directory, _WATCHED)
            except OSError:
                continue  # not there yet; the safety rescan retries
            self._watched_dirs[wd] = directory
            known.add(directory)
