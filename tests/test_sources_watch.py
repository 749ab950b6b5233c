"""The change watcher: polling waits its interval; inotify wakes on a write before the rescan."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from sidecar.settings import FileSettings
from sidecar.sources.watch import ChangeWatcher


async def test_polling_waits_the_interval(tmp_path: Path) -> None:
    settings = FileSettings(paths=(str(tmp_path / "*.log"),), watch="poll", poll_interval=0.2)
    watcher = ChangeWatcher(settings)
    watcher.start()
    try:
        assert watcher.mode == "poll"
        started = time.monotonic()
        await watcher.wait()
        assert time.monotonic() - started >= 0.19
    finally:
        watcher.stop()


async def test_inotify_wakes_on_a_new_file_before_the_rescan(tmp_path: Path) -> None:
    settings = FileSettings(
        paths=(str(tmp_path / "*.log"),), watch="inotify", inotify_rescan_interval=30.0
    )
    watcher = ChangeWatcher(settings)
    watcher.start()
    try:
        assert watcher.mode == "inotify"
        waiting = asyncio.create_task(watcher.wait())
        await asyncio.sleep(0.05)
        assert not waiting.done()
        (tmp_path / "app.log").write_bytes(b"line\n")
        await asyncio.wait_for(waiting, 5)
    finally:
        watcher.stop()


async def test_a_cancellation_racing_a_wake_up_ends_the_wait(tmp_path: Path) -> None:
    """A task that waits again and again is woken and cancelled in the same loop turn: the
    cancellation must end it, or the daemon's shutdown that awaits it waits for ever."""
    watcher = ChangeWatcher(
        FileSettings(paths=(str(tmp_path / "x.log"),), watch="inotify", inotify_rescan_interval=60)
    )
    watcher.start()
    try:

        async def wait_for_ever() -> None:
            while True:
                await watcher.wait()

        waiting = asyncio.create_task(wait_for_ever())
        await asyncio.sleep(0.01)
        watcher._woken.set()
        await asyncio.sleep(0)  # the wake-up has run, the cancellation comes before the next
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(waiting, 5)
    finally:
        watcher.stop()
