"""Supervised tasks and deadlines: the one way an engine runs its long-lived asyncio tasks.

Modelled on kopf's `aiotasks`: every task is named, a task that ends on its own (an error, or a
return where it should run until cancelled) is a failure, logged once with its reason and
reported to the owner's `on_failure` (the webhook counts it; both the daemon and the webhook
fail `/healthz` on it), and stopping cancels and then waits only until a deadline: a task that
does not stop when cancelled is logged and left behind, never waited for, so a shutdown ends in
time whatever its tasks do.

Short tasks that are meant to end (the poster's writes) are a `TaskSet`: tracked until they
end, abandoned all at once when a shutdown's deadline passed.

Deadlines are `time.monotonic()` values, so that one deadline can bound several waits in turn
(`remaining`, `until`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)

_T = TypeVar("_T")


def remaining(deadline: float, *, floor: float = 0.0) -> float:
    """Seconds from now to `deadline` (a `time.monotonic()` value), at least `floor`."""
    return max(floor, deadline - time.monotonic())


def until(deadline: float) -> asyncio.Timeout:
    """`asyncio.timeout` ending at `deadline` (a `time.monotonic()` value); one already past
    still lets the awaited call start (and raises at its first wait)."""
    return asyncio.timeout_at(asyncio.get_running_loop().time() + remaining(deadline))


class Supervisor:
    """Named tasks that run until cancelled; see the module docstring."""

    def __init__(
        self, on_failure: Callable[[str], None] | None = None, *, logger: logging.Logger = log
    ) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}
        #: Where failures are logged: the owner's logger, so that its logs say whose task it is.
        self._log = logger
        self._on_failure = on_failure
        #: Set by `stopping`: from then on a task's end is no failure (the owner stops them).
        self._stopping = False

    def spawn(self, name: str, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Start `coroutine` as the task `name` (the name a failure report says)."""
        task = asyncio.create_task(coroutine, name=name)
        self._tasks[name] = task
        task.add_done_callback(self._ended)
        return task

    def __contains__(self, name: str) -> bool:
        return name in self._tasks

    def alive(self) -> dict[str, bool]:
        """Each task's name, and whether it is still running (a liveness check)."""
        return {name: not task.done() for name, task in self._tasks.items()}

    def ended(self) -> list[str]:
        """The tasks that ended on their own (not cancelled through `cancel`), in spawn order."""
        return [name for name, task in self._tasks.items() if task.done()]

    def stopping(self) -> None:
        """The owner stops now: tasks that end from here on are not failures."""
        self._stopping = True

    async def first_end(self, stop: asyncio.Event) -> str | None:
        """Wait until `stop` is set (None) or a task ends on its own (its name)."""
        stopping = asyncio.create_task(stop.wait(), name="stop-signal")
        try:
            done, _ = await asyncio.wait(
                [stopping, *self._tasks.values()], return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stopping.cancel()
        ended = [task.get_name() for task in done if task is not stopping]
        return ended[0] if ended else None

    async def cancel(self, *names: str, deadline: float) -> None:
        """Cancel the named tasks (all without names) and wait for them until `deadline`
        (their errors no longer matter); one still running then is logged and left behind."""
        chosen = names or tuple(self._tasks)
        tasks = [self._tasks.pop(name) for name in chosen if name in self._tasks]
        for task in tasks:
            task.remove_done_callback(self._ended)
            task.cancel()
        if not tasks:
            return
        done, pending = await asyncio.wait(tasks, timeout=remaining(deadline, floor=0.1))
        for task in done:
            if not task.cancelled():
                task.exception()  # retrieved: it no longer matters, and asyncio must not log it
        for task in pending:
            self._log.error("task %s did not stop when cancelled; leaving it", task.get_name())

    def _ended(self, task: asyncio.Task[None]) -> None:
        """A task's end, not through `cancel`: a failure, unless the owner is stopping."""
        # Retrieved either way, so that asyncio does not log it.
        failure = None if task.cancelled() else task.exception()
        if self._stopping:
            return
        self._log.error(
            "task %s stopped unexpectedly: %s",
            task.get_name(),
            failure or ("it was cancelled" if task.cancelled() else "it returned"),
            exc_info=failure,
        )
        if self._on_failure is not None:
            self._on_failure(task.get_name())


class TaskSet:
    """Short tasks tracked until they end, as kopf's `Scheduler` does without its limit (the
    owner bounds how many it starts)."""

    def __init__(self) -> None:
        self._running: set[asyncio.Task[Any]] = set()

    def spawn(
        self,
        coroutine: Coroutine[Any, Any, _T],
        on_end: Callable[[asyncio.Task[_T]], None] | None = None,
    ) -> asyncio.Task[_T]:
        """Start `coroutine`; `on_end` is called with its task when it ends, however."""
        task = asyncio.create_task(coroutine)
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        if on_end is not None:
            task.add_done_callback(on_end)
        return task

    def running(self) -> list[asyncio.Task[Any]]:
        """The tasks not ended yet."""
        return list(self._running)

    def cancel(self) -> int:
        """Cancel every task not ended yet; how many there were."""
        running = self.running()
        for task in running:
            task.cancel()
        return len(running)
