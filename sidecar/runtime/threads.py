"""The one way the sidecar runs blocking work off the event loop: a named daemon thread per job.

Each blocking concern (look-ups that need API discovery and the API ping through the blocking
client, checkpoint writes, a blocking sink's writes and look-ups under `--dry-run`) gets its own
`WorkerThread` rather than `asyncio.to_thread`: the default executor's threads are joined at
exit, so a look-up or a ping hanging until its timeout would hold up a shutdown whose deadline
already passed. Jobs on one thread run one after another, which also gives the checkpoint its
"one write at a time" for free.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

_T = TypeVar("_T")


class WorkerThread:
    """Runs blocking calls one after another on a daemon thread; `call` awaits the result."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    async def call(self, function: Callable[[], _T]) -> _T:
        """Run `function` on the thread after the jobs before it; return or raise its outcome.

        Cancelling the caller skips a job not started yet; one already running runs to its end
        (a thread cannot be interrupted), and the jobs queued after it still wait for it.
        """
        future: Future[_T] = Future()
        self._jobs.put((function, future))
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        """Let the thread end after the jobs queued so far (never waited for)."""
        self._jobs.put(None)

    def _work(self) -> None:
        """The thread: run jobs in order until `close`."""
        while (job := self._jobs.get()) is not None:
            function, future = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(function())
            except BaseException as error:  # handed to the awaiting coroutine
                future.set_exception(error)
