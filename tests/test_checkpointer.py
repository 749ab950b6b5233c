"""The checkpointer: writes each commit once, on its own thread, and the last commit at exit."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

from sidecar.core.correlate import CorrelationState
from sidecar.daemon.checkpoint_writer import WRITE_BUDGET, Checkpointer
from sidecar.model import FilePosition
from sidecar.runtime.checkpoints import Checkpoint, read_checkpoint


def checkpoint(offset: int) -> Checkpoint:
    return Checkpoint(files=(FilePosition("/logs/app.log", 1, 2, "ab" * 16, 8, offset),))


async def test_a_commit_is_written_once_and_an_unchanged_one_not_again(tmp_path: Path) -> None:
    checkpointer = Checkpointer(tmp_path / "checkpoint.json", interval=60)
    try:
        await checkpointer.write()  # nothing committed: nothing written
        assert not checkpointer.path.exists()
        checkpointer.commit(checkpoint(10))
        await checkpointer.write()
        await checkpointer.write()
        assert checkpointer.writes == 1
        assert read_checkpoint(checkpointer.path) == checkpoint(10)
    finally:
        checkpointer.close()


async def test_the_periodic_task_writes_the_latest_commit(tmp_path: Path) -> None:
    checkpointer = Checkpointer(tmp_path / "checkpoint.json", interval=0.01)
    running = asyncio.create_task(checkpointer.run())
    try:
        checkpointer.commit(checkpoint(10))
        checkpointer.commit(checkpoint(20))
        for _ in range(200):
            if read_checkpoint(checkpointer.path) == checkpoint(20):
                break
            await asyncio.sleep(0.01)
        assert read_checkpoint(checkpointer.path) == checkpoint(20)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        checkpointer.close()


async def test_the_final_write_after_cancelling_the_task_leaves_the_last_commit(
    tmp_path: Path,
) -> None:
    checkpointer = Checkpointer(tmp_path / "checkpoint.json", interval=60)
    running = asyncio.create_task(checkpointer.run())
    checkpointer.commit(checkpoint(10))
    await asyncio.sleep(0)  # the task starts its write
    checkpointer.commit(checkpoint(30))
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    await checkpointer.write()
    checkpointer.close()
    assert read_checkpoint(checkpointer.path) == checkpoint(30)


async def test_a_failed_write_is_retried_at_the_next_commit(tmp_path: Path) -> None:
    missing = tmp_path / "not-yet"
    checkpointer = Checkpointer(missing / "checkpoint.json", interval=0.01)
    running = asyncio.create_task(checkpointer.run())
    try:
        checkpointer.commit(checkpoint(10))
        await asyncio.sleep(0.05)
        assert checkpointer.writes == 0
        missing.mkdir()
        checkpointer.commit(checkpoint(20))
        for _ in range(200):
            if checkpointer.writes:
                break
            await asyncio.sleep(0.01)
        assert read_checkpoint(checkpointer.path) == checkpoint(20)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        checkpointer.close()


async def test_a_commit_equal_to_what_is_on_disk_is_not_written(tmp_path: Path) -> None:
    """An idle daemon's commits (new objects, the same content) cost no write and no fsync."""
    checkpointer = Checkpointer(tmp_path / "checkpoint.json", interval=0.01)
    running = asyncio.create_task(checkpointer.run())
    try:
        for _ in range(20):
            checkpointer.commit(checkpoint(10))
            await asyncio.sleep(0.02)
        await checkpointer.write()
        assert checkpointer.writes == 1
        assert read_checkpoint(checkpointer.path) == checkpoint(10)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        checkpointer.close()


def large(offset: int) -> Checkpoint:
    """A busy daemon's checkpoint: the correlator's 4,096 dedup keys, about 220 KB."""
    observed = tuple((f"{i:016x}", f"obj-{i}.{i:x}", i + 1, 1.5e9 + i) for i in range(4096))
    return replace(checkpoint(offset), correlation=CorrelationState(observed=observed))


async def test_a_large_state_changing_all_the_time_is_written_within_the_budget(
    tmp_path: Path,
) -> None:
    """At one commit every 10 ms (the interval), writes of a 220 KB state are spaced so that
    at most `WRITE_BUDGET` bytes a second reach the disk; the last commit is still written."""
    size = len(large(0).to_json())
    assert size > 3 * WRITE_BUDGET
    checkpointer = Checkpointer(tmp_path / "checkpoint.json", interval=0.01)
    running = asyncio.create_task(checkpointer.run())
    started = time.monotonic()
    offset = 0
    try:
        while time.monotonic() - started < 2.0:
            offset += 1
            checkpointer.commit(large(offset))
            await asyncio.sleep(0.01)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    elapsed = time.monotonic() - started
    try:
        assert checkpointer.writes * size <= WRITE_BUDGET * elapsed + size, checkpointer.writes
        await checkpointer.write()  # the final write, as at exit
        assert read_checkpoint(checkpointer.path) == large(offset)
    finally:
        checkpointer.close()
