"""`event-sidecar replay`: read a log once and produce the Events it stands for.

The clock is the log's own time (the last timestamp seen), so the correlator's windows and the
Events' timestamps are what they would have been had the sidecar run beside the controller.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import BinaryIO

from sidecar.correlate import Correlator, CorrelatorSettings
from sidecar.events import EventNamer
from sidecar.metrics import Metrics
from sidecar.model import RetrySettings
from sidecar.pipeline import LineCounts, LinePipeline, Processor
from sidecar.recorder import Recorder
from sidecar.rules import RuleSet
from sidecar.scan import DEFAULT_MAX_LINE_BYTES, LineFramer
from sidecar.sinks import Sink
from sidecar.transitions import TransitionTracker

READ_SIZE = 1 << 20


@dataclass(frozen=True, slots=True)
class ReplaySettings:
    component: str | None = None
    host: str = ""
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    correlation: CorrelatorSettings = field(default_factory=CorrelatorSettings)
    retry: RetrySettings = field(default_factory=RetrySettings)
    #: The year klog's timestamps are placed in (they carry none); None derives it from the
    #: clock and each line's month (`sidecar.decode.klog_year`).
    year: int | None = None


@dataclass(frozen=True, slots=True)
class ReplayResult:
    counts: LineCounts
    #: How many Events ended in each outcome: create, patch, or a drop cause.
    outcomes: dict[str, int]
    #: The log's clock when the replay ended.
    end_time: float


def replay(
    chunks: Iterable[bytes],
    rules: RuleSet,
    sink: Sink,
    metrics: Metrics,
    *,
    settings: ReplaySettings | None = None,
    source: str = "replay",
    namer: EventNamer | None = None,
) -> ReplayResult:
    """Replay `chunks` (the log's bytes in any pieces) into `sink`.

    Event names default to the log's clock, so printing the same log twice gives the same names;
    a replay into a cluster passes a wall-clock `EventNamer` so that a second run cannot collide.
    """
    settings = settings or ReplaySettings()
    pipeline = LinePipeline(
        Processor(rules, TransitionTracker()),
        year=settings.year,
        max_line_bytes=settings.max_line_bytes,
    )
    log_clock = _LogClock(time.time())
    clock = log_clock.now
    if namer is None:
        namer = EventNamer(lambda: int(log_clock.current * 1e9))

    recorder = Recorder(
        sink=sink,
        correlator=Correlator(settings.correlation, clock, namer),
        namer=namer,
        metrics=metrics,
        component=settings.component or rules.component,
        host=settings.host,
        clock=clock,
        retry=settings.retry,
    )
    framer = LineFramer(settings.max_line_bytes)
    outcomes: dict[str, int] = {}

    def run(block: bytes, too_long: int = 0) -> None:
        fed = pipeline.feed(block, too_long=too_long)
        metrics.count_lines(source, fed.tally)
        for spec in fed.specs:
            if spec.time is not None:
                log_clock.current = spec.time
            outcome = recorder.record(spec)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1

    for chunk in chunks:
        block = framer.feed(chunk)
        too_long = framer.take_too_long()
        if block or too_long:
            run(block, too_long)
    run(framer.flush())
    end = pipeline.last_time if pipeline.last_time is not None else log_clock.current
    return ReplayResult(pipeline.counts, outcomes, max(end, log_clock.current))


class _LogClock:
    """The time of the line whose Event is being recorded; lines without a time keep the last."""

    def __init__(self, start: float) -> None:
        self.current = start

    def now(self) -> float:
        return self.current


def read_chunks(stream: BinaryIO, size: int = READ_SIZE) -> Iterable[bytes]:
    while chunk := stream.read(size):
        yield chunk
