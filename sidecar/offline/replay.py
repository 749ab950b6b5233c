"""`event-sidecar replay`: read a log once and produce the Events it stands for.

The clock is the log's own time (the last timestamp seen), so the correlator's windows and the
Events' timestamps are what they would have been had the sidecar run beside the controller (as
`run` does too: an Event's time is its line's time).

In events.k8s.io/v1 mode (`events_api`) the Events are `run`'s in that mode (`ModernRecorder`):
series, their heartbeat every `series_finish_seconds` of the log's clock, and at the end every
count still only in memory written, as `run` writes them at shutdown.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, BinaryIO

from sidecar.core.correlate import Correlator, CorrelatorSettings
from sidecar.core.events.corev1 import Event, EventNamer
from sidecar.core.events.eventsv1 import ModernEvent
from sidecar.core.events.series import FINISH_SECONDS, SeriesCache
from sidecar.core.explain import LineTrace, Recorded, explain_line, split_records
from sidecar.core.lines.decode import years_at
from sidecar.core.lines.scan import DEFAULT_MAX_LINE_BYTES, LineFramer
from sidecar.core.pipeline import LineCounts, LinePipeline, Processor
from sidecar.core.rules import RuleSet
from sidecar.core.transitions import TransitionTracker
from sidecar.model import WRITTEN, EventsApi, EventSpec, RetrySettings
from sidecar.recording.recorder import Recorder
from sidecar.recording.recorder_eventsv1 import ModernRecorder
from sidecar.runtime.metrics import Metrics
from sidecar.runtime.sinks import MemorySink, Sink

READ_SIZE = 1 << 20


@dataclass(frozen=True, slots=True)
class ReplaySettings:
    component: str | None = None
    host: str = ""
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    correlation: CorrelatorSettings = field(default_factory=CorrelatorSettings)
    retry: RetrySettings = field(default_factory=RetrySettings)
    #: The year klog's timestamps are placed in (they carry none); None derives it from the
    #: clock and each line's month (`sidecar.core.lines.decode.klog_year`).
    year: int | None = None
    #: Only lines whose time is in [since, until) become Events (seconds since the epoch; None:
    #: unbounded). Lines outside still go through the rules, so a transition's `{from}` inside
    #: the window is the state the log left before it. A line without a time has the time of
    #: the last line that had one.
    since: float | None = None
    until: float | None = None
    #: Which API's Events to write (`auto` is resolved by the caller, which knows the cluster).
    events_api: EventsApi = "v1"
    #: events.k8s.io/v1: the series heartbeat's period, on the log's clock (`run
    #: --series-finish`).
    series_finish_seconds: float = FINISH_SECONDS


@dataclass(frozen=True, slots=True)
class WriteRecord:
    """One write `replay` made (`-o writes`): the line whose Event it was, and the Event as
    stored after it."""

    line: int
    write: str
    event: Event | ModernEvent


@dataclass(frozen=True, slots=True)
class ReplayResult:
    counts: LineCounts
    #: How many Events ended in each outcome: create, patch, or a drop cause.
    outcomes: dict[str, int]
    #: The log's clock when the replay ended.
    end_time: float
    #: Events whose line fell outside `since`/`until`, not recorded.
    outside_window: int = 0
    #: Every create and PATCH, in order, when `replay` was asked to keep them (memory sink).
    writes: list[WriteRecord] = field(default_factory=list)
    #: events.k8s.io/v1: occurrences only counted in a series (written later, by the heartbeat
    #: or at the end); None in core/v1 mode.
    series: int | None = None

    def summary(self) -> dict[str, Any]:
        """What `replay --summary json` prints, and what `test`'s counters may name."""
        result = self
        counts = result.counts
        written = {
            k: v
            for k, v in result.outcomes.items()
            if k in ("create", "patch", "already_written", "series")
        }
        series = {} if result.series is None else {"series": result.series}
        return {
            "lines_read": counts.lines,
            "bytes_read": counts.bytes,
            "skipped": counts.skipped,
            "decoded": counts.decoded,
            "undecodable": dict(sorted(counts.undecodable.items())),
            "incomplete": dict(sorted(counts.incomplete.items())),
            "too_long": counts.too_long,
            "matched": counts.matches.total(),
            "unchanged": counts.unchanged.total(),
            "rule_misses": counts.misses.total(),
            "events": counts.events,
            "outside_window": result.outside_window,
            "created": written.get("create", 0),
            "patched": written.get("patch", 0),
            "already_written": written.get("already_written", 0),
            **series,
            "dropped": {k: v for k, v in sorted(result.outcomes.items()) if k not in written},
        }


def replay(
    chunks: Iterable[bytes],
    rules: RuleSet,
    sink: Sink,
    metrics: Metrics,
    *,
    settings: ReplaySettings | None = None,
    source: str = "replay",
    line_names: bool = False,
    keep_writes: bool = False,
) -> ReplayResult:
    """Replay `chunks` (the log's bytes in any pieces) into `sink`.

    Event names default to the log's clock, so printing the same log twice gives the same names.
    With `line_names` (a replay into a cluster) they are derived from the lines as in `run`
    (`LineNamer`), so a second replay of the same log finds its Events written already (409,
    `already_written`) and PATCHes its repeats to the same counts instead of doubling them.
    `keep_writes` (with a `MemorySink`) keeps every write with its line number; the lines are
    then fed one by one, which is slower but tells each Event's line.
    """
    settings = settings or ReplaySettings()
    pipeline = LinePipeline(
        Processor(rules, TransitionTracker()),
        year=settings.year,
        max_line_bytes=settings.max_line_bytes,
    )
    log_clock = _LogClock(time.time())
    line_namer = None
    if line_names:
        # Here, not at the top: the daemon's poster (asyncio and its threads) is only needed for
        # a replay into a cluster, and importing it is a few per cent of a replay's CPU.
        from sidecar.recording.naming import LineNamer  # noqa: PLC0415

        line_namer = LineNamer(settings.component or rules.component, settings.host)
    recorder = _recorder(
        rules, sink, metrics, settings=settings, log_clock=log_clock, namer=line_namer
    )
    modern = recorder if isinstance(recorder, ModernRecorder) else None
    framer = LineFramer(settings.max_line_bytes)
    outcomes: dict[str, int] = {}
    writes: list[WriteRecord] = []
    outside = 0
    since, until = settings.since, settings.until
    windowed = since is not None or until is not None
    memory = sink if keep_writes and isinstance(sink, MemorySink) else None
    if memory is not None:
        memory.on_write = lambda write, event: writes.append(
            WriteRecord(pipeline.counts.lines, write, event)
        )
    #: The next series heartbeat, on the log's clock (the first: a period after the first line).
    heartbeat: float | None = None

    def run(block: bytes, too_long: int = 0) -> None:
        nonlocal outside, heartbeat
        fed = pipeline.feed(block, too_long=too_long)
        metrics.count_lines(source, fed.counts)
        for spec in fed.specs:
            if spec.time is not None:
                log_clock.current = spec.time
            if windowed and not _within(log_clock.current, since, until):
                outside += 1
                continue
            if modern is not None:
                period = settings.series_finish_seconds
                if heartbeat is None:
                    heartbeat = log_clock.current + period
                if log_clock.current >= heartbeat:
                    # One heartbeat for however many periods passed: it writes what is due now.
                    modern.heartbeat()
                    heartbeat += period * (1 + (log_clock.current - heartbeat) // period)
            if line_namer is not None:
                line_namer.current = spec
            outcome = recorder.record(spec)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1

    for chunk in chunks:
        block = framer.feed(chunk)
        too_long = framer.take_too_long()
        if block or too_long:
            if memory is None:
                run(block, too_long)
            else:
                lines = block.splitlines(keepends=True)
                run(lines[0] if lines else b"", too_long)
                for line in lines[1:]:
                    run(line)
    run(framer.flush())
    if modern is not None:
        modern.flush()
    end = pipeline.last_time if pipeline.last_time is not None else log_clock.current
    return ReplayResult(
        pipeline.counts,
        outcomes,
        max(end, log_clock.current),
        outside,
        writes,
        series=outcomes.get("series", 0) if modern is not None else None,
    )


def _within(moment: float, since: float | None, until: float | None) -> bool:
    return (since is None or moment >= since) and (until is None or moment < until)


def _recorder(
    rules: RuleSet,
    sink: Sink,
    metrics: Metrics,
    *,
    settings: ReplaySettings,
    log_clock: _LogClock,
    namer: EventNamer | None,
) -> Recorder:
    """The Recorder `replay` and `explain` write through, on the log's clock."""
    clock = log_clock.now
    if namer is None:
        namer = EventNamer(lambda: int(log_clock.current * 1e9))
    correlator = Correlator(settings.correlation, namer)
    # One set of arguments for both: the modern recorder only adds its series.
    make: Callable[..., Recorder] = Recorder
    if settings.events_api == "events.k8s.io/v1":
        series = SeriesCache(finish_seconds=settings.series_finish_seconds)
        make = partial(ModernRecorder, series=series)
    return make(
        sink=sink,
        correlator=correlator,
        namer=namer,
        metrics=metrics,
        component=settings.component or rules.component,
        host=settings.host,
        clock=clock,
        retry=settings.retry,
    )


def explain(
    chunks: Iterable[bytes],
    rules: RuleSet,
    sink: MemorySink,
    metrics: Metrics,
    *,
    settings: ReplaySettings | None = None,
) -> Iterator[tuple[LineTrace, Recorded | None]]:
    """Each line's trace (`sidecar.core.explain.explain_line`) and, when it called for an Event,
    what the Recorder wrote: the same steps as `replay`, one record at a time. The input is framed
    as `replay` frames it, so a multi-line record is explained as one."""
    settings = settings or ReplaySettings()
    limit = settings.max_line_bytes
    processor = Processor(rules, TransitionTracker())
    log_clock = _LogClock(time.time())
    recorder = _recorder(rules, sink, metrics, settings=settings, log_clock=log_clock, namer=None)
    year = settings.year if settings.year is not None else years_at(datetime.now(UTC))
    framer = LineFramer(limit)
    number = 1

    def blocks() -> Iterator[bytes]:
        for chunk in chunks:
            yield framer.feed(chunk)
        yield framer.flush()

    for block in blocks():
        for line in split_records(block, limit):
            traced = explain_line(processor, line, number, year=year, max_line_bytes=limit)
            number += line.count(b"\n") + 1
            record = traced.record
            if record is not None and record.time is not None:
                log_clock.current = record.time
            spec = traced.outcome
            if type(spec) is not EventSpec:
                yield traced, None
                continue
            sink.last = None
            outcome = recorder.record(spec)
            yield traced, Recorded(outcome, sink.last if outcome in WRITTEN else None)


class _LogClock:
    """The time of the line whose Event is being recorded; lines without a time keep the last."""

    def __init__(self, start: float) -> None:
        self.current = start

    def now(self) -> float:
        return self.current


def read_chunks(stream: BinaryIO, size: int = READ_SIZE) -> Iterable[bytes]:
    while chunk := stream.read(size):
        yield chunk
