"""`ThreadedSender`: the `Sender` of a sink without one of its own (the memory sink of
`--dry-run`, tests' sinks), its blocking calls on daemon threads, one per write or look-up in
flight."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from sidecar.core.events.corev1 import InvolvedObject
from sidecar.model import ObjectTarget
from sidecar.runtime.sinks import Send, Sink, send_to
from sidecar.runtime.threads import WorkerThread

_T = TypeVar("_T")


class _Threads:
    """Daemon threads taking blocking calls, one call per idle thread."""

    def __init__(self, name: str, threads: int) -> None:
        self._threads = [WorkerThread(f"{name}-{n}") for n in range(threads)]
        self._idle: asyncio.Queue[WorkerThread] = asyncio.Queue()
        for thread in self._threads:
            self._idle.put_nowait(thread)

    async def call(self, function: Callable[[], _T]) -> _T:
        thread = await self._idle.get()
        try:
            return await thread.call(function)
        finally:
            self._idle.put_nowait(thread)

    def close(self) -> None:
        for thread in self._threads:
            thread.close()


class ThreadedSender:
    """A `Sender` over a blocking `Sink`: each write on one of `threads` daemon threads, each
    look-up on one of `threads` others."""

    def __init__(self, sink: Sink, threads: int) -> None:
        self._sink = sink
        self._writers = _Threads("event-sidecar-write", threads)
        self._lookups = _Threads("event-sidecar-lookup", threads)

    async def send(self, request: Send) -> None:
        await self._writers.call(lambda: send_to(self._sink, request))

    async def resolve(self, target: ObjectTarget) -> InvolvedObject:
        """`sink.resolve` (which never raises) on an idle look-up thread."""
        return await self._lookups.call(lambda: self._sink.resolve(target))

    async def close(self) -> None:
        self._writers.close()
        self._lookups.close()
