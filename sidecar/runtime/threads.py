"""The one way the sidecar runs blocking work off the event loop: named daemon threads.

Each blocking concern (look-ups that need API discovery and the API ping through the blocking
client, checkpoint writes, a blocking sink's writes and look-ups under `--dry-run`, closing the
status server) gets its own `WorkerThread` (`call_once` for a single job) rather than
`asyncio.to_thread`: the default executor's threads are joined at exit, so a look-up or a ping
hanging until its timeout would hold up a shutdown whose deadline already passed. Jobs on one
thread run one after another, which also gives the checkpoint its "one write at a time" for
free. `call_later` is the process's last resort (a watchdog that ends it), on a daemon thread
too, so that it never holds an exit up either. The status server's own thread
(`sidecar.runtime.status_server`) is the standard library's WSGI server, not blocking work.
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


async def call_once(name: str, function: Callable[[], _T]) -> _T:
    """Run `function` on a daemon thread of its own, named `name`; return or raise its outcome."""
    worker = WorkerThread(name)
    try:
        return await worker.call(function)
    finally:
        worker.close()


def call_later(seconds: float, function: Callable[[], object], name: str) -> None:
    """Call `function` on a daemon thread named `name` in `seconds`, unless the process has
    ended by then (never waited for at exit)."""
    timer = threading.Timer(seconds, function)
    timer.name = name
    timer.daemon = True
    timer.start()
