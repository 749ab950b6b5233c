"""The change watcher: polling waits its interval; inotify wakes on a write before the rescan."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from sidecar.core.settings import FileSettings
from sidecar.sources.watch import ChangeWatcher


async def test_polling_waits_the_interval(tmp_path: Path) -> None:
    settings = FileSettings(paths=(str(tmp_path / "*.log"),), watch="poll", poll_interval=0.2)
    watcher = ChangeWatcher(settings, lambda _changes: None)
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
    watcher = ChangeWatcher(settings, lambda _changes: None)
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
