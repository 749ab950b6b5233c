"""What a write costs: writes within the settle time are handed over together, new files never
wait, writes alone never expand the globs, and an idle consumer does not wake.

The daemon is paid for in every pod; with one wake-up per `write()` of an unbuffered controller
it cost 9-42x mtail's CPU, the line work itself being a small part of each wake-up.
"""

from __future__ import annotations

import asyncio
import glob
import itertools
import os
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from sidecar.core.settings import FileSettings
from sidecar.runtime.checkpoints import write_checkpoint
from sidecar.runtime.metrics import Metrics
from sidecar.sources import Block
from sidecar.sources.files import FileSource
from sidecar.sources.watch import Changes, ChangeWatcher
from tests.test_consumer import consumer


async def _until(condition: object, what: str, timeout: float = 5.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
def expansions(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The patterns `glob.glob` expands from now on, in order."""
    expanded: list[str] = []
    real_glob = glob.glob

    def counting_glob(pattern: str) -> list[str]:
        expanded.append(pattern)
        return real_glob(pattern)

    monkeypatch.setattr(glob, "glob", counting_glob)
    return expanded


async def test_writes_within_the_settle_time_cost_one_wake_up(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    seen: list[tuple[float, Changes]] = []
    settings = FileSettings(
        paths=(str(log),), watch="inotify", inotify_rescan_interval=30.0, settle_time=0.3
    )
    watcher = ChangeWatcher(settings, lambda changes: seen.append((time.monotonic(), changes)))
    watcher.start()
    try:
        writes = 0
        with log.open("ab", buffering=0) as out:
            began = time.monotonic()
            while time.monotonic() - began < 0.9:
                out.write(b"line\n")
                writes += 1
                await asyncio.sleep(0.01)
                if writes == 1:
                    # A quiet file is read at its first write, without the settle time.
                    await _until(lambda: seen, "the first write", timeout=0.2)
        await _until(lambda: len(seen) >= 2 and seen[-1][0] > began + 0.9, "the last writes")
        await asyncio.sleep(0.4)  # the settle time runs out with nothing more to hand over
        stamps = [stamp for stamp, changes in seen if str(log) in changes.modified]
        # One hand-over at the first write, then one per settle time: 4 or 5, not one per write.
        assert writes >= 40
        assert 3 <= len(stamps) <= 5, stamps
        assert all(b - a >= 0.29 for a, b in itertools.pairwise(stamps[1:])), stamps
        # Listening again once quiet: the next write is handed over at once.
        count = len(seen)
        with log.open("ab") as out:
            out.write(b"again\n")
        await _until(lambda: len(seen) > count, "a write after the quiet spell", timeout=0.2)
    finally:
        watcher.stop()


async def test_new_files_do_not_wait_for_the_settle_time(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    seen: list[Changes] = []
    settings = FileSettings(
        paths=(str(tmp_path / "*.log"),),
        watch="inotify",
        inotify_rescan_interval=30.0,
        settle_time=10.0,
    )
    watcher = ChangeWatcher(settings, seen.append)
    watcher.start()
    try:
        log.write_bytes(b"one\n")
        await _until(lambda: seen, "the first write")
        log.write_bytes(b"two\n")  # waits out the settle time...
        await asyncio.sleep(0.1)
        assert len(seen) == 1
        (tmp_path / "new.log").write_bytes(b"new\n")
        await _until(lambda: len(seen) == 2, "the new file", timeout=1.0)
        # ...unless a directory entry changes: then what was written goes with it.
        assert seen[1].entries
        assert str(tmp_path / "new.log") in seen[1].created
        assert str(log) in seen[1].modified
        assert await watcher.wait() is False  # handed over already; no rescan of the patterns
    finally:
        watcher.stop()


async def test_writes_alone_never_expand_the_globs(tmp_path: Path, expansions: list[str]) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    blocks: asyncio.Queue[Block] = asyncio.Queue(100)
    settings = FileSettings(
        paths=(str(tmp_path / "*.log"),),
        watch="inotify",
        inotify_rescan_interval=30.0,
        settle_time=0.0,
    )
    source = FileSource(settings, blocks, Metrics(CollectorRegistry()))
    running = asyncio.create_task(source.run())
    lines: list[bytes] = []

    async def collect() -> None:
        while True:
            lines.extend((await blocks.get()).data.splitlines())

    collecting = asyncio.create_task(collect())
    try:
        await _until(lambda: source.ready, "the first scan")
        after_start = len(expansions)
        with log.open("ab", buffering=0) as out:
            for number in range(20):
                out.write(b"line %d\n" % number)
                await _until(lambda wanted=number + 1: len(lines) >= wanted, f"line {number}")
        assert lines == [b"line %d" % number for number in range(20)]
        assert expansions[after_start:] == []
        # A new file the pattern names is a directory entry: that one is scanned for.
        (tmp_path / "other.log").write_bytes(b"other\n")
        await _until(lambda: b"other" in lines, "the new file's line")
        assert len(expansions) > after_start
    finally:
        running.cancel()
        collecting.cancel()
        await asyncio.gather(running, collecting, return_exceptions=True)


async def test_the_checkpoint_written_beside_the_log_is_not_scanned_for(
    tmp_path: Path, expansions: list[str]
) -> None:
    """The checkpoint's place by default is beside the log: each write creates its temporary
    file and renames it over the checkpoint, every second while lines come. Those entries are
    no file of ours and no rotation's, so they cost no glob and no stat per path."""
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    checkpoint = tmp_path / "checkpoint.json"
    blocks: asyncio.Queue[Block] = asyncio.Queue(100)
    settings = FileSettings(
        paths=(str(tmp_path / "*.log"),), watch="inotify", inotify_rescan_interval=30.0
    )
    source = FileSource(
        settings,
        blocks,
        Metrics(CollectorRegistry()),
        exclude=frozenset({os.path.realpath(checkpoint)}),
    )
    running = asyncio.create_task(source.run())
    try:
        await _until(lambda: source.ready, "the first scan")
        after_start = len(expansions)
        for number in range(10):
            write_checkpoint(checkpoint, b'{"n": %d}' % number)
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        assert expansions[after_start:] == []
        # A file the pattern names is still scanned for at once.
        (tmp_path / "other.log").write_bytes(b"other\n")
        await _until(lambda: len(expansions) > after_start, "the new file's scan")
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def test_an_idle_consumer_does_not_wake_to_mark() -> None:
    marks = 0
    decoder = consumer(mark_interval=0.01)
    real_mark = decoder.mark

    async def counting_mark(*, wait: bool = True) -> None:
        nonlocal marks
        marks += 1
        await real_mark(wait=wait)

    decoder.mark = counting_mark  # type: ignore[method-assign]
    running = asyncio.create_task(decoder.run())
    try:
        await asyncio.sleep(0.3)
        assert marks == 0  # nothing to mark: it waited for a block, not every 10 ms
        decoder.blocks.put_nowait(Block(b"", 0, 0.0, positions=()))
        await asyncio.wait_for(decoder.blocks.join(), 2)
        await asyncio.sleep(0.1)
        assert 1 <= marks <= 3  # the new positions are marked, then it sleeps again
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def test_writes_to_a_file_shorter_than_its_fingerprint_never_wait(tmp_path: Path) -> None:
    # Until its first bytes tell it from its next generation, a truncation and a regrowth within
    # the settle time could pass unseen: each write is read at once.
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    blocks: asyncio.Queue[Block] = asyncio.Queue(100)
    settings = FileSettings(
        paths=(str(log),), watch="inotify", inotify_rescan_interval=30.0, settle_time=5.0
    )
    source = FileSource(settings, blocks, Metrics(CollectorRegistry()))
    running = asyncio.create_task(source.run())
    lines: list[bytes] = []

    async def collect() -> None:
        while True:
            lines.extend((await blocks.get()).data.splitlines())

    collecting = asyncio.create_task(collect())
    try:
        await _until(lambda: source.ready, "the first scan")
        with log.open("ab", buffering=0) as out:
            for number in range(5):
                out.write(b"short %d\n" % number)
                await _until(lambda wanted=number + 1: len(lines) >= wanted, "a line", 1.0)
    finally:
        running.cancel()
        collecting.cancel()
        await asyncio.gather(running, collecting, return_exceptions=True)


async def test_a_line_kept_for_a_stack_waits_for_the_settled_read(tmp_path: Path) -> None:
    """Each read's last line is kept back for a stack that may follow it (`--stack-linger`).
    Released on its own after the linger, it woke the source once more per read of a steadily
    written file: half the wake-ups at 10-100 lines/s. While writes settle it now goes with the
    settled read; after the last write it goes at the next settle time's end, when no more
    writes came: at most two settle times after it was written."""
    log = tmp_path / "app.log"
    log.write_bytes(b"x" * 300 + b"\n")  # longer than its fingerprint: writes may settle
    blocks: asyncio.Queue[Block] = asyncio.Queue(100)
    settings = FileSettings(
        paths=(str(log),),
        watch="inotify",
        inotify_rescan_interval=30.0,
        settle_time=0.3,
        linger=0.05,
    )
    source = FileSource(settings, blocks, Metrics(CollectorRegistry()))
    running = asyncio.create_task(source.run())
    handed: list[tuple[float, list[bytes]]] = []

    async def collect() -> None:
        while True:
            block = await blocks.get()
            if block.data:
                handed.append((time.monotonic(), block.data.splitlines()))

    collecting = asyncio.create_task(collect())
    try:
        await _until(lambda: source.ready and handed, "the first line")
        handed.clear()
        with log.open("ab", buffering=0) as out:
            for number in range(12):  # 10 lines/s for 1.2 s: four settle times
                out.write(b"line %d\n" % number)
                await asyncio.sleep(0.1)
        last_write = time.monotonic() - 0.1
        await _until(lambda: sum(len(lines) for _, lines in handed) >= 12, "every line")
        assert [line for _, lines in handed for line in lines] == [
            b"line %d" % number for number in range(12)
        ]
        # One block per read (the first write's, then one per settle time) and the last line's
        # release: about 6. A release of its own after each read made it about twice that.
        assert len(handed) <= 7, [lines for _, lines in handed]
        assert handed[-1][0] - last_write < 2 * 0.3 + 0.25
    finally:
        running.cancel()
        collecting.cancel()
        await asyncio.gather(running, collecting, return_exceptions=True)
