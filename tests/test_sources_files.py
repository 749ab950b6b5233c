"""The file source on its own: appends, partial lines, both rotations, long lines, checkpoints.

Every test runs twice, with inotify and with polling: both only decide when to look, so they must
give the same lines.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from sidecar.core.settings import FileSettings
from sidecar.model import FilePosition
from sidecar.runtime.checkpoints import Checkpoint
from sidecar.runtime.metrics import Metrics
from sidecar.sources import Block
from sidecar.sources.files import FileSource
from sidecar.sources.followed import fingerprint

WAIT = 10.0


class Tail:
    """A running `FileSource` and what it has handed over so far."""

    def __init__(self, source: FileSource, blocks: asyncio.Queue[Block]) -> None:
        self.source = source
        self.blocks = blocks
        self.lines: list[bytes] = []
        #: The blocks' bytes, as handed over (a record's lines stay together in one).
        self.data: list[bytes] = []
        self.too_long = 0
        self.positions: tuple[FilePosition, ...] = ()

    async def collect(self) -> None:
        while True:
            block = await self.blocks.get()
            self.lines.extend(block.data.splitlines())
            if block.data:
                self.data.append(block.data)
            self.too_long += block.too_long
            if block.positions is not None:
                self.positions = block.positions

    async def until(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + WAIT
        while not condition():
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}; lines so far: {self.lines!r}")
            await asyncio.sleep(0.02)

    async def lines_are(self, expected: list[bytes]) -> None:
        await self.until(lambda: len(self.lines) >= len(expected), f"{len(expected)} lines")
        await asyncio.sleep(0.3)  # and nothing more arrives
        assert self.lines == expected


@pytest.fixture(params=["inotify", "poll"])
def watch(request: pytest.FixtureRequest) -> str:
    mode: str = request.param
    return mode


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
async def start_tail(watch: str, registry: CollectorRegistry) -> AsyncIterator[Callable[..., Tail]]:
    metrics = Metrics(registry)
    tasks: list[asyncio.Task[None]] = []

    def start(*paths: Path | str, resume: Checkpoint | None = None, **settings: object) -> Tail:
        options: dict[str, object] = {
            "poll_interval": 0.05,
            "rotate_wait": 0.5,
            "watch": watch,
            **settings,
        }
        blocks: asyncio.Queue[Block] = asyncio.Queue(4)
        source = FileSource(
            FileSettings(paths=tuple(str(p) for p in paths), **options),  # type: ignore[arg-type]
            blocks,
            metrics,
            resume=resume,
        )
        tail = Tail(source, blocks)
        tasks.append(asyncio.create_task(source.run()))
        tasks.append(asyncio.create_task(tail.collect()))
        return tail

    yield start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as stream:
        stream.write(data)


async def test_appended_lines_arrive_and_a_partial_line_waits_for_its_newline(
    tmp_path: Path, start_tail: Callable[..., Tail], watch: str
) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"one\n")
    tail = start_tail(log)
    await tail.lines_are([b"one"])
    assert tail.source.mode == watch
    append(log, b"two\nthr")
    await tail.lines_are([b"one", b"two"])
    append(log, b"ee\n")
    await tail.lines_are([b"one", b"two", b"three"])
    (position,) = tail.positions
    assert position.offset == log.stat().st_size


async def test_globs_pick_up_new_files(tmp_path: Path, start_tail: Callable[..., Tail]) -> None:
    tail = start_tail(tmp_path / "*.log")
    await tail.until(lambda: tail.source.ready, "the first scan")
    (tmp_path / "a.log").write_bytes(b"a1\n")
    await tail.lines_are([b"a1"])
    (tmp_path / "b.log").write_bytes(b"b1\n")
    (tmp_path / "ignored.txt").write_bytes(b"x\n")
    await tail.lines_are([b"a1", b"b1"])


async def test_rename_rotation_reads_the_old_file_to_its_end(
    tmp_path: Path, start_tail: Callable[..., Tail], registry: CollectorRegistry
) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"1\n")
    tail = start_tail(log)
    await tail.lines_are([b"1"])
    with log.open("ab") as writer:
        writer.write(b"2\n")
        writer.flush()
        log.rename(tmp_path / "app.log.1")
        log.write_bytes(b"new-1\n")
        # The writer has not reopened yet: its last lines still go to the old file.
        writer.write(b"3\n4")
        writer.flush()
        await asyncio.sleep(0.2)
        writer.write(b"\n")
    append(log, b"new-2\n")
    await tail.until(lambda: len(tail.lines) >= 6, "six lines")
    await asyncio.sleep(0.3)
    old = [line for line in tail.lines if not line.startswith(b"new")]
    new = [line for line in tail.lines if line.startswith(b"new")]
    assert old == [b"1", b"2", b"3", b"4"]
    assert new == [b"new-1", b"new-2"]
    rotations = registry.get_sample_value(
        "event_sidecar_rotations_total", {"source": "file", "kind": "rename"}
    )
    assert rotations == 1
    # After rotate_wait the old file is closed and leaves the positions.
    await tail.until(lambda: len(tail.source.followed) == 1, "the old file to be closed")


async def test_copytruncate_is_detected_and_read_from_the_start(
    tmp_path: Path, start_tail: Callable[..., Tail], registry: CollectorRegistry
) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"old line 1\nold line 2\n")
    tail = start_tail(log)
    await tail.lines_are([b"old line 1", b"old line 2"])
    shutil.copyfile(log, tmp_path / "app.log.1")
    with log.open("r+b") as stream:
        stream.truncate(0)
    append(log, b"n1\n")
    await tail.lines_are([b"old line 1", b"old line 2", b"n1"])
    assert (
        registry.get_sample_value(
            "event_sidecar_rotations_total", {"source": "file", "kind": "truncate"}
        )
        == 1
    )


async def test_truncate_and_regrow_past_the_offset_is_noticed_by_the_fingerprint(
    tmp_path: Path, start_tail: Callable[..., Tail]
) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"aaaa\n")
    tail = start_tail(log, poll_interval=0.5, inotify_rescan_interval=0.5, watch="poll")
    await tail.lines_are([b"aaaa"])
    with log.open("r+b") as stream:
        stream.truncate(0)
        stream.write(b"bbbbbbbb\ncc\n")
    await tail.lines_are([b"aaaa", b"bbbbbbbb", b"cc"])


async def test_a_long_line_is_skipped_and_counted_and_reading_goes_on(
    tmp_path: Path, start_tail: Callable[..., Tail]
) -> None:
    log = tmp_path / "app.log"
    tail = start_tail(log, max_line_bytes=1000, read_size=256)
    await tail.until(lambda: tail.source.ready, "the first scan")
    log.write_bytes(b"before\n" + b"x" * 5000 + b"\nafter\n")
    await tail.lines_are([b"before", b"after"])
    assert tail.too_long == 1


async def test_resume_from_a_checkpoint_and_refuse_a_reused_inode(
    tmp_path: Path, start_tail: Callable[..., Tail]
) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"seen 1\nseen 2\nnew 3\n")
    info = log.stat()
    head = log.read_bytes()[:256]
    seen = len(b"seen 1\nseen 2\n")
    same = FilePosition(str(log), info.st_dev, info.st_ino, fingerprint(head), len(head), seen)
    tail = start_tail(log, resume=Checkpoint((same,)))
    await tail.lines_are([b"new 3"])

    other = tmp_path / "other.log"
    other.write_bytes(b"first line of another file\n")
    info = other.stat()
    reused = FilePosition(str(other), info.st_dev, info.st_ino, fingerprint(b"old file!"), 9, 5)
    tail = start_tail(other, resume=Checkpoint((reused,)))
    await tail.lines_are([b"first line of another file"])


async def test_start_at_the_end_skips_what_is_there(
    tmp_path: Path, start_tail: Callable[..., Tail]
) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"old\n")
    tail = start_tail(log, start="end")
    await tail.until(lambda: tail.source.ready, "the first scan")
    append(log, b"new\n")
    await tail.lines_are([b"new"])


async def test_a_rotated_file_is_found_again_after_a_restart(
    tmp_path: Path, start_tail: Callable[..., Tail]
) -> None:
    """Rotated out of the pattern while the sidecar was down: its unread end is not lost."""
    log = tmp_path / "app.log"
    log.write_bytes(b"read\nunread\n")
    info = log.stat()
    head = log.read_bytes()
    position = FilePosition(
        str(log), info.st_dev, info.st_ino, fingerprint(head), len(head), len(b"read\n")
    )
    os.rename(log, tmp_path / "app.log.1")  # noqa: PTH104
    log.write_bytes(b"fresh\n")
    tail = start_tail(log, resume=Checkpoint((position,)))
    await tail.until(lambda: len(tail.lines) >= 2, "two lines")
    await asyncio.sleep(0.2)
    assert sorted(tail.lines) == [b"fresh", b"unread"]


def lost(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(f"event_sidecar_{name}_total", {"source": "file", **labels})
    return found or 0.0


async def test_a_truncation_without_a_copy_counts_the_unread_bytes(
    tmp_path: Path, watch: str, registry: CollectorRegistry
) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"first\n")
    blocks: asyncio.Queue[Block] = asyncio.Queue(1)  # not drained yet: the source must wait
    source = FileSource(
        FileSettings(paths=(str(log),), watch=watch, poll_interval=0.05),  # type: ignore[arg-type]
        blocks,
        Metrics(registry),
    )
    running = asyncio.create_task(source.run())
    try:
        await asyncio.sleep(0.3)
        append(log, b"lost 1\nlost 2\n")
        await asyncio.sleep(0.3)  # seen, not read: the queue is full
        os.truncate(log, 0)
        append(log, b"n\n")
        await asyncio.sleep(0.3)
        lines: list[bytes] = []
        deadline = time.monotonic() + WAIT
        while lines != [b"first", b"n"] and time.monotonic() < deadline:
            block = await asyncio.wait_for(blocks.get(), WAIT)
            lines.extend(block.data.splitlines())
        assert lines == [b"first", b"n"]
        assert lost(registry, "bytes_lost", cause="truncated") == len(b"lost 1\nlost 2\n")
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def test_a_file_created_and_gone_before_it_could_be_opened_is_counted(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    log, rotated = tmp_path / "app.log", tmp_path / "app.log.1"
    log.write_bytes(b"g0\n")
    blocks: asyncio.Queue[Block] = asyncio.Queue()
    source = FileSource(
        FileSettings(paths=(str(log),), watch="inotify", rotate_wait=0.2),
        blocks,
        Metrics(registry),
    )
    tail = Tail(source, blocks)
    tasks = [asyncio.create_task(source.run()), asyncio.create_task(tail.collect())]
    try:
        await tail.until(lambda: tail.lines == [b"g0"], "g0")
        # All at once, the event loop busy: g1 is created, rotated over g0's name, and deleted
        # before the source can look. g0 stays readable through the descriptor it holds.
        log.replace(rotated)
        log.write_bytes(b"g1\n")
        log.replace(rotated)
        rotated.unlink()
        log.write_bytes(b"g2\n")
        await tail.lines_are([b"g0", b"g2"])
        assert lost(registry, "files_lost") == 1
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


#: A line and the traceback `logging` writes after it, in one record.
LOGGED = b"[2024-01-11 14:21:03,806] kopf.objects         [ERROR   ] [ns/x] Handler failed\n"
TRACEBACK = (
    b"Traceback (most recent call last):\n"
    b'  File "/app/handlers.py", line 12, in create_fn\n'
    b"    apply(spec)\n"
    b"ValueError: bad\n"
)
NEXT = b"[2024-01-11 14:21:04,001] kopf.objects         [INFO    ] [ns/x] Retrying\n"


async def test_a_line_and_its_stack_read_apart_at_the_newline_are_one_record(
    tmp_path: Path, start_tail: Callable[..., Tail]
) -> None:
    """The line is read alone (its read ends exactly at its newline) and kept back, its offset
    not checkpointed; the stack's bytes join it when they come."""
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    tail = start_tail(log, linger=30.0)
    await tail.until(lambda: bool(tail.positions), "the file opened")
    append(log, LOGGED)
    await tail.until(lambda: _read(tail), "the read")
    await asyncio.sleep(0.2)
    assert tail.lines == []
    (position,) = tail.positions
    assert position.offset == 0  # a kill -9 now reads the line again
    # The next line shows the traceback ended (no chained one after it); it is kept back itself.
    append(log, TRACEBACK + NEXT)
    await tail.until(lambda: bool(tail.data), "the record")
    assert tail.data[0] == LOGGED + TRACEBACK
    (position,) = tail.positions
    assert position.offset == len(LOGGED + TRACEBACK)


def _read(tail: Tail) -> bool:
    """Whether the source has read all of its one file (whatever it handed over)."""
    (followed,) = tail.source._files.values()
    return followed.offset == Path(followed.path).stat().st_size


async def test_a_line_kept_back_for_a_stack_goes_after_the_linger(
    tmp_path: Path, start_tail: Callable[..., Tail]
) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    tail = start_tail(log, linger=0.3)
    await tail.until(lambda: bool(tail.positions), "the file opened")
    append(log, LOGGED)
    written = time.monotonic()
    await tail.until(lambda: bool(tail.lines), "the line, once the linger is over")
    assert time.monotonic() - written >= 0.3
    assert tail.lines == [LOGGED.rstrip(b"\n")]
    await tail.until(lambda: tail.positions[0].offset == len(LOGGED), "its position")


async def test_a_line_kept_back_when_killed_is_read_again_on_restart(
    tmp_path: Path, start_tail: Callable[..., Tail]
) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    tail = start_tail(log, linger=30.0)
    await tail.until(lambda: bool(tail.positions), "the file opened")
    append(log, b"one\n" + LOGGED)
    await tail.until(lambda: tail.lines == [b"one"] and _read(tail), "the first line")
    await asyncio.sleep(0.2)
    (position,) = tail.positions
    assert position.offset == len(b"one\n")
    # The first source is never stopped cleanly (its framer's line is simply gone with it).
    again = start_tail(log, resume=Checkpoint((position,)))
    await again.until(lambda: bool(again.lines), "the line read again")
    assert again.lines == [LOGGED.rstrip(b"\n")]


async def test_a_rotated_files_last_line_goes_before_its_successors_lines(
    tmp_path: Path, start_tail: Callable[..., Tail]
) -> None:
    """A line that ended the rotated file's last read is not kept back for a stack behind the
    new file's lines: their order is what transitions are judged on."""
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    tail = start_tail(log, linger=30.0)
    await tail.until(lambda: bool(tail.positions), "the file opened")
    append(log, b"1\n2\n")
    await tail.until(lambda: tail.lines == [b"1"], "the first line")
    log.rename(tmp_path / "app.log.1")
    log.write_bytes(b"new-1\nnew-2\n")
    await tail.until(lambda: len(tail.lines) >= 3, "three lines")
    assert tail.lines == [b"1", b"2", b"new-1"]  # new-2 is kept back: the last of a read
