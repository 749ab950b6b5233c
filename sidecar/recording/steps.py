"""A write's steps and the two ways to make them.

The recorder decides how to write apart from doing it (`Recorder.write_steps`, a generator of
`Send`s and `Pause`s, told of a failed request by the `SinkError` thrown in); `drive_blocking`
makes the steps with a sink's blocking calls (`replay`, `Recorder.write`), `drive_async` through
a `Sender` from the event loop (the daemon's poster). So the retry, 409 and rate-limit rules
exist once, whatever does the I/O.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

from sidecar.runtime.sinks import Send, Sender, Sink, SinkError, send_to

_R = TypeVar("_R")


@dataclass(frozen=True, slots=True)
class Pause:
    """Wait `seconds` before the next step (a retry's interval, a back-off, a Retry-After)."""

    seconds: float


#: What a write's steps yield: a request to make, or a wait.
Step = Send | Pause
#: A write's steps (see the module docstring): each `Send`'s failure is thrown in as the
#: `SinkError` it raised; the generator's value is the outcome.
Steps = Generator[Step, None, _R]


def drive_blocking(steps: Steps[_R], sink: Sink, sleep: Callable[[float], None]) -> _R:
    """Make `steps` with the sink's blocking calls; return their outcome."""
    try:
        step = next(steps)
        while True:
            try:
                if isinstance(step, Pause):
                    sleep(step.seconds)
                else:
                    send_to(sink, step)
            except SinkError as error:
                step = steps.throw(error)
            else:
                step = steps.send(None)
    except StopIteration as stop:
        outcome: _R = stop.value
        return outcome


async def drive_async(
    steps: Steps[Any],
    sender: Sender,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Any:
    """Make a write's `steps` (see `sidecar.recording.recorder`) through `sender`; return their
    outcome.
    The asyncio twin of `drive_blocking`."""
    try:
        step = next(steps)
        while True:
            try:
                if isinstance(step, Pause):
                    await sleep(step.seconds)
                else:
                    await sender.send(step)
            except SinkError as error:
                step = steps.throw(error)
            else:
                step = steps.send(None)
    except StopIteration as stop:
        return stop.value
