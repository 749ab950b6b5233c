"""From blocks of log lines to `EventSpec`s: pre-filter, decode, match, transition, render.

No I/O and no asyncio: `replay` drives this from a file, the daemon from its sources. Counts are
added to the metrics once per block rather than per line, which keeps the per-line cost down.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sidecar.decode import Undecodable, decode
from sidecar.metrics import Metrics
from sidecar.records import Record
from sidecar.rules import MissingField, ObjectTarget, RuleSet, render
from sidecar.scan import select_lines
from sidecar.transitions import TransitionTracker


@dataclass(frozen=True, slots=True)
class EventSpec:
    """What a rule says should be reported about one line, before the object's uid is known."""

    rule: str
    target: ObjectTarget
    type: str
    reason: str
    message: str
    #: The line's own time (seconds since the epoch), when it had one.
    time: float | None


@dataclass(frozen=True, slots=True)
class RuleMiss:
    """A line matched `rule` but lacked `field`, which the rule needs."""

    rule: str
    field: str


@dataclass(frozen=True, slots=True)
class Unchanged:
    """A transition rule matched but the object's state was the same as before."""

    rule: str


Outcome = EventSpec | RuleMiss | Unchanged | None


class Processor:
    """Applies the rules and the transition state to one decoded record."""

    def __init__(self, rules: RuleSet, tracker: TransitionTracker) -> None:
        self.rules = rules
        self.tracker = tracker

    def process(self, record: Record) -> Outcome:
        rule = self.rules.first_match(record)
        if rule is None:
            return None
        try:
            target = rule.resolve_object(record)
            transition = rule.transition
            if transition is None:
                message = render(rule.message, record)
            else:
                state = render(transition.state, record)
                key = (
                    rule.name,
                    target.kind,
                    target.namespace,
                    target.name,
                    render(transition.key, record),
                )
                tracker = self.tracker
                change = tracker.compare(
                    key, state, first=transition.first, initial=transition.initial
                )
                if change is None:
                    tracker.remember(key, state)
                    return Unchanged(rule.name)
                message = render(rule.message, record, {"from": change.before, "to": change.after})
                tracker.remember(key, state)
        except MissingField as missing:
            return RuleMiss(rule.name, missing.path)
        return EventSpec(rule.name, target, rule.type, rule.reason, message, record.time)


@dataclass(slots=True)
class LineCounts:
    """Running totals, for `replay`'s summary; the metrics carry the same numbers."""

    read: int = 0
    bytes: int = 0
    skipped: int = 0
    too_long: int = 0
    decoded: int = 0
    undecodable: Counter[str] = field(default_factory=Counter)
    matched: int = 0
    missed: int = 0
    unchanged: int = 0
    specs: int = 0
    #: Decoded lines whose time was out of range and dropped (the read time stands in).
    time_out_of_range: int = 0


class LinePipeline:
    """Feeds blocks of complete lines through the pre-filter, the decoders and the processor."""

    def __init__(
        self,
        processor: Processor,
        metrics: Metrics,
        *,
        source: str,
        year: int,
        max_line_bytes: int,
    ) -> None:
        self.processor = processor
        self.metrics = metrics
        self.source = source
        self.year = year
        self.max_line_bytes = max_line_bytes
        self.counts = LineCounts()
        #: The time of the last line that had one: `replay`'s clock.
        self.last_time: float | None = None

    def feed(self, block: bytes) -> list[EventSpec]:
        """Process a block of complete lines; return the Events they call for, in order."""
        selection = select_lines(block, self.processor.rules.literals, self.max_line_bytes)
        specs: list[EventSpec] = []
        undecodable: Counter[str] = Counter()
        matches: Counter[str] = Counter()
        misses: Counter[tuple[str, str]] = Counter()
        unchanged: Counter[str] = Counter()
        times_dropped = 0
        process, year = self.processor.process, self.year
        for line in selection.candidates:
            record = decode(line, year=year)
            if type(record) is Undecodable:
                undecodable[record.reason] += 1
                continue
            assert type(record) is Record
            if record.time is not None:
                self.last_time = record.time
            elif record.time_out_of_range:
                times_dropped += 1
            outcome = process(record)
            if outcome is None:
                continue
            matches[outcome.rule] += 1
            if type(outcome) is EventSpec:
                specs.append(outcome)
            elif type(outcome) is RuleMiss:
                misses[(outcome.rule, outcome.field)] += 1
            else:
                unchanged[outcome.rule] += 1

        counts, metrics, source = self.counts, self.metrics, self.source
        candidates = len(selection.candidates)
        counts.read += selection.lines
        counts.bytes += len(block)
        counts.too_long += selection.too_long
        counts.skipped += selection.lines - selection.too_long - candidates
        counts.decoded += candidates - undecodable.total()
        counts.undecodable.update(undecodable)
        counts.matched += matches.total()
        counts.missed += misses.total()
        counts.unchanged += unchanged.total()
        counts.specs += len(specs)
        counts.time_out_of_range += times_dropped
        metrics.lines_read.labels(source).inc(selection.lines)
        metrics.bytes_read.labels(source).inc(len(block))
        metrics.lines_too_long.labels(source).inc(selection.too_long)
        metrics.lines_skipped.labels(source).inc(selection.lines - selection.too_long - candidates)
        evicted = self.processor.tracker.take_evictions()
        if evicted:
            metrics.transition_evictions.inc(evicted)
        if times_dropped:
            metrics.lines_time_out_of_range.labels(source).inc(times_dropped)
        for reason, number in undecodable.items():
            metrics.lines_undecodable.labels(source, reason).inc(number)
        for rule, number in matches.items():
            metrics.rule_matches.labels(rule).inc(number)
        for (rule, missing), number in misses.items():
            metrics.rule_misses.labels(rule, missing).inc(number)
        for rule, number in unchanged.items():
            metrics.transitions_unchanged.labels(rule).inc(number)
        return specs

    def count_too_long(self, lines: int) -> None:
        """Lines the framer dropped before they reached a block."""
        if lines:
            self.counts.too_long += lines
            self.counts.read += lines
            self.metrics.lines_too_long.labels(self.source).inc(lines)
            self.metrics.lines_read.labels(self.source).inc(lines)
