"""When the file source looks again: inotify on the patterns' directories, or a polling interval.

Both strategies only decide *when* to scan; what changed is found by the same scan either way, so
their results are the same. inotify is optional (the `inotify_simple` package and a kernel that
allows another instance): `auto` falls back to polling without it, `inotify` fails.
"""

from __future__ import annotations

import asyncio
import glob
import logging
import os
from typing import Any

from sidecar.settings import FileSettings

log = logging.getLogger(__name__)

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


class ChangeWatcher:
    """Waits until the files named by `settings.paths` may have changed."""

    def __init__(self, settings: FileSettings) -> None:
        self.settings = settings
        self._inotify: Any = None
        self._watched_dirs: set[str] = set()
        self._woken = asyncio.Event()
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
            return
        self.mode = "inotify"
        self._add_watches()
        asyncio.get_running_loop().add_reader(self._inotify.fileno(), self._woken.set)

    def stop(self) -> None:
        """Release the inotify descriptor."""
        if self._inotify is not None:
            asyncio.get_running_loop().remove_reader(self._inotify.fileno())
            self._inotify.close()
            self._inotify = None

    async def wait(self) -> None:
        """Until something may have changed: an inotify event, or the polling interval."""
        if self._inotify is None:
            await asyncio.sleep(self.settings.poll_interval)
            return
        # `asyncio.timeout`, not `wait_for`: Python 3.11's `wait_for` swallows a cancellation
        # that arrives as the event is set, and the task then waits again instead of ending
        # (a shutdown hung on it when the watched folder was busy).
        try:
            async with asyncio.timeout(self.settings.inotify_rescan_interval):
                await self._woken.wait()
        except TimeoutError:
            self._add_watches()
        self._woken.clear()
        # Drain what is pending; the events only say "look", the scan finds out what changed.
        self._inotify.read(timeout=0)

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
