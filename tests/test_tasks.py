"""The supervised tasks' helper: a failure is reported once, a stop is bounded by its deadline."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import pytest

from sidecar.runtime.tasks import Supervisor, TaskSet, remaining, until


async def _forever() -> None:
    await asyncio.sleep(3600)


async def _fail() -> None:
    raise RuntimeError("broken")


async def test_a_task_that_ends_is_a_failure_reported_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failed: list[str] = []
    tasks = Supervisor(on_failure=failed.append)
    tasks.spawn("steady", _forever())
    tasks.spawn("broken", _fail())
    assert await tasks.first_end(asyncio.Event()) == "broken"
    assert failed == ["broken"]
    assert tasks.alive() == {"steady": True, "broken": False}
    assert tasks.ended() == ["broken"]
    assert "task broken stopped unexpectedly: broken" in caplog.text
    await tasks.cancel(deadline=time.monotonic() + 1)
    assert "steady" not in tasks and failed == ["broken"]  # cancelling is no failure


async def test_a_stop_request_ends_the_wait_and_later_ends_are_no_failures() -> None:
    failed: list[str] = []
    tasks = Supervisor(on_failure=failed.append)
    stop = asyncio.Event()
    tasks.spawn("steady", _forever())
    stop.set()
    assert await tasks.first_end(stop) is None
    tasks.stopping()
    tasks.spawn("broken", _fail())
    await asyncio.sleep(0.01)
    assert failed == []
    await tasks.cancel(deadline=time.monotonic() + 1)


async def test_a_task_that_ignores_cancellation_is_left_behind_at_the_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await release.wait()

    tasks = Supervisor()
    task = tasks.spawn("stubborn", stubborn())
    await asyncio.sleep(0)
    started = time.monotonic()
    with caplog.at_level(logging.ERROR):
        await tasks.cancel("stubborn", deadline=started + 0.2)
    assert 0.1 < time.monotonic() - started < 1.0
    assert "task stubborn did not stop when cancelled; leaving it" in caplog.text
    release.set()
    await task


async def test_until_bounds_a_wait_by_a_monotonic_deadline() -> None:
    deadline = time.monotonic() + 0.05
    with pytest.raises(TimeoutError):
        async with until(deadline):
            await asyncio.sleep(1)
    assert remaining(deadline) == 0.0
    assert remaining(deadline, floor=0.1) == 0.1


async def test_a_task_cancelled_by_someone_else_is_a_failure_too(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failed: list[str] = []
    tasks = Supervisor(on_failure=failed.append)
    task = tasks.spawn("steady", _forever())
    await asyncio.sleep(0)
    task.cancel()
    assert await tasks.first_end(asyncio.Event()) == "steady"
    await asyncio.sleep(0)
    assert failed == ["steady"]
    assert "task steady stopped unexpectedly: it was cancelled" in caplog.text


async def test_a_task_set_tracks_its_tasks_until_they_end_and_cancels_the_rest() -> None:
    ended: list[str] = []
    writes = TaskSet()
    quick = writes.spawn(asyncio.sleep(0), lambda task: ended.append("quick"))
    slow = writes.spawn(_forever(), lambda task: ended.append("slow"))
    assert len(writes.running()) == 2
    await quick
    await asyncio.sleep(0)
    assert len(writes.running()) == 1 and ended == ["quick"]
    assert writes.cancel() == 1
    await asyncio.wait([slow])
    await asyncio.sleep(0)  # its done callbacks
    assert writes.running() == [] and ended == ["quick", "slow"]
