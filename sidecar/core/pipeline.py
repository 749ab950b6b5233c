"""From blocks of log lines to `EventSpec`s: pre-filter, decode, match, transition, render.

No I/O, no asyncio and no metrics: `replay` drives this from a file, the daemon from its sources,
and each block's `LineCounts` come back to them to add to their metrics once per block rather
than per line, which keeps the per-line cost down.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial

from sidecar.core.lines.decode import BUILTIN_FORMATS, Undecodable, decode, years_at
from sidecar.core.lines.records import UNKNOWN_LEVEL, Record, text_of
from sidecar.core.lines.scan import select_lines
from sidecar.core.rules import CompiledRule, MissingField, RuleSet, render
from sidecar.core.rules.compile import is_absent
from sidecar.core.rules.templates import Template
from sidecar.core.transitions import StateKey, TransitionTracker
from sidecar.model import EventSpec, ObjectTarget


# Not frozen: built per line (or per Event), where a frozen dataclass costs several times more
# (its __init__ goes through object.__setattr__). Immutable by convention: nothing assigns to it.
@dataclass(slots=True)
class RuleMiss:
    """A line matched `rule` but lacked `field`, which the rule needs."""

    rule: str
    field: str


# Not frozen: built per line (or per Event), where a frozen dataclass costs several times more
# (its __init__ goes through object.__setattr__). Immutable by convention: nothing assigns to it.
@dataclass(slots=True)
class Unchanged:
    """A transition rule matched but emits nothing: the object's state was the same as before,
    or the rule's case for this transition says `emit: false`."""

    rule: str


# Not frozen: built per line (or per Event), where a frozen dataclass costs several times more
# (its __init__ goes through object.__setattr__). Immutable by convention: nothing assigns to it.
@dataclass(slots=True)
class Consumed:
    """A rule with `emit: false` matched: the line is taken, without an Event, from the rules
    after it."""

    rule: str


Outcome = EventSpec | RuleMiss | Unchanged | Consumed | None


#: A transition with a known duration: (tracker, from, to, seconds the object stayed in from).
Duration = tuple[str, str, str, float]


@dataclass(frozen=True, slots=True)
class RuleTried:
    """One rule `explain` tried on a record, and the first of its conditions that failed."""

    rule: str
    #: The condition's name (`message`, `level`, `logger`, `fields.x`); None: the rule matched.
    failed: str | None = None
    #: What the condition wants, as the rules file says it.
    wants: str = ""
    #: The value the record held there; None when it held none.
    seen: str | None = None


@dataclass(slots=True)
class Trace:
    """What `Processor.process` did with one record, filled in as it goes (for `explain`)."""

    tried: list[RuleTried] = field(default_factory=list)
    target: ObjectTarget | None = None
    #: The transition's state key (tracker, kind, namespace, name, key) and the state kept
    #: under it before and after the record; None before means nothing was known yet.
    key: StateKey | None = None
    before: str | None = None
    after: str | None = None
    #: Which of the rule's `cases` (0-based) chose the outcome; None: the rule's own.
    case: int | None = None
    #: False when the chosen case says `emit: false`.
    emit: bool = True
    #: What the rule's named groups captured on the line (empty: none).
    captures: dict[str, str] = field(default_factory=dict)


class Processor:
    """Applies the rules and the transition state to one decoded record.

    `rules` may be replaced between blocks (a rules reload): `LinePipeline.feed` processes a
    block in one synchronous call, so a block is always processed with one rule set.
    """

    def __init__(self, rules: RuleSet, tracker: TransitionTracker) -> None:
        self.rules = rules
        self.tracker = tracker
        #: The time of lines that carry none (when their block was fed); None: unknown.
        self.now: float | None = None
        #: Transitions with a duration since `take_durations`, in order.
        self.durations: list[Duration] = []
        #: Reasons rendered from lines and replaced by their stand-in, by rule, since
        #: `take_reasons_replaced`.
        self.reasons_replaced: Counter[str] = Counter()

    def take_durations(self) -> list[Duration]:
        """The durations since the last call (the caller's block counts carry them)."""
        durations, self.durations = self.durations, []
        return durations

    def _reason(
        self,
        rule: CompiledRule,
        template: Template,
        record: Record,
        extra: dict[str, str] | None,
    ) -> str:
        """A reason rendered from the line (`reason: "{to|camel}"`); one replaced by its
        stand-in (not a reason, or past the rule's limit) is counted by rule."""
        reason, replaced = rule.reason_of(template, record, extra)
        if replaced:
            self.reasons_replaced[rule.name] += 1
        return reason

    def take_reasons_replaced(self) -> Counter[str]:
        """The reasons replaced since the last call, by rule (for the block's counts)."""
        replaced, self.reasons_replaced = self.reasons_replaced, Counter()
        return replaced

    def process(self, record: Record, trace: Trace | None = None) -> Outcome:
        """The record's outcome; `trace`, when given, is filled with how it was reached (the
        same steps: `explain` must say what `run` does)."""
        if trace is None:
            rule = self.rules.first_match(record)
        else:
            rule = _trace_match(self.rules, record, trace)
        if rule is None:
            return None
        if not rule.emit:
            return Consumed(rule.name)
        if rule.captures is not None:
            captured = rule.captures(record)
            if trace is not None:
                trace.captures = captured
            # A copy: the captures are the rule's, not the line's (the next rule, or `explain`,
            # sees the line as decoded). A group named like a field of the line hides it.
            record = replace(record, fields={**record.fields, **captured})
        event_type, reason = rule.type, rule.reason
        try:
            target = rule.resolve_object(record)
            if trace is not None:
                trace.target = target
            transition = rule.transition
            if transition is None:
                message = render(rule.message, record)
                if rule.reason_template is not None:
                    reason = self._reason(rule, rule.reason_template, record, None)
            else:
                at = record.time if record.time is not None else self.now
                state = render(transition.state, record)
                key = (
                    transition.tracker,
                    target.kind,
                    target.namespace,
                    target.name,
                    render(transition.key, record),
                )
                tracker = self.tracker
                if trace is not None:
                    trace.key, trace.before = key, tracker.state_of(key)
                change = tracker.compare(
                    key, state, first=transition.first, initial=transition.initial, at=at
                )
                if trace is not None:
                    trace.after = state
                if change is None:
                    tracker.remember(key, state, at)
                    return Unchanged(rule.name)
                case, chosen = rule.choose(change.before, change.after, change.first)
                if trace is not None:
                    trace.case, trace.emit = case, chosen.emit
                if chosen.emit:
                    event_type, reason = chosen.type, chosen.reason
                    states = {"from": change.before, "to": change.after}
                    message = render(chosen.message, record, states)
                    if chosen.reason_template is not None:
                        reason = self._reason(rule, chosen.reason_template, record, states)
                tracker.remember(key, state, at)
                if change.stayed is not None:
                    self.durations.append(
                        (transition.tracker, change.before, change.after, change.stayed)
                    )
                if not chosen.emit:
                    return Unchanged(rule.name)
        except MissingField as missing:
            if trace is not None:
                trace.after = trace.before
            return RuleMiss(rule.name, missing.path)
        related = rule.resolve_related
        return EventSpec(
            rule.name,
            target,
            event_type,
            reason,
            message,
            record.time,
            rule.action or reason,
            _related(related, record) if related is not None else None,
        )


def _related(resolve: Callable[[Record], ObjectTarget], record: Record) -> ObjectTarget | None:
    """The related object, or None when the line does not name it: `related` is optional, so
    its absence never costs the Event."""
    try:
        return resolve(record)
    except MissingField:
        return None


def _trace_match(rules: RuleSet, record: Record, trace: Trace) -> CompiledRule | None:
    """`RuleSet.first_match`, noting each rule tried and the condition that failed."""
    for rule in rules.rules:
        check = rule.first_failure(record)
        if check is None:
            trace.tried.append(RuleTried(rule.name))
            return rule
        seen = check.seen(record)
        trace.tried.append(
            RuleTried(
                rule.name, check.name, check.wants, None if is_absent(seen) else text_of(seen)
            )
        )
    return None


@dataclass(slots=True)
class LineCounts:
    """What lines added up to: one block's (`Fed.counts`, which its caller adds to its metrics)
    or every block's so far (`LinePipeline.counts`, `replay`'s summary). The metrics carry the
    same numbers."""

    lines: int = 0
    bytes: int = 0
    too_long: int = 0
    skipped: int = 0
    undecodable: Counter[str] = field(default_factory=Counter)
    matches: Counter[str] = field(default_factory=Counter)
    #: By (rule, missing field).
    misses: Counter[tuple[str, str]] = field(default_factory=Counter)
    unchanged: Counter[str] = field(default_factory=Counter)
    #: The Events the lines called for.
    events: int = 0
    #: Decoded lines whose time was out of range and dropped (the read time stands in).
    time_out_of_range: int = 0
    #: Decoded lines by what they did not give (`time`, `level`, `message`: `Record.missing`)
    #: or gave but not understood (`unknown_level`): never silently a stand-in.
    incomplete: Counter[str] = field(default_factory=Counter)
    #: Lines read by each format the rules file declares (`formats.declared`), by its name.
    declared: Counter[str] = field(default_factory=Counter)
    #: Objects whose transition state was forgotten to stay within the tracker's bound.
    evictions: int = 0
    #: Transitions whose duration is known, for `transition_duration_seconds` (one block's
    #: only: `add` leaves them out, so that running totals do not grow with the log).
    durations: list[Duration] = field(default_factory=list)
    #: By rule, reasons rendered from lines and replaced by their stand-in (`PhaseOther`).
    reasons_replaced: Counter[str] = field(default_factory=Counter)

    @property
    def decoded(self) -> int:
        return self.lines - self.too_long - self.skipped - self.undecodable.total()

    def add(self, block: LineCounts) -> None:
        """Add one block's counts (all but its `durations`) to these."""
        self.lines += block.lines
        self.bytes += block.bytes
        self.too_long += block.too_long
        self.skipped += block.skipped
        self.undecodable.update(block.undecodable)
        self.matches.update(block.matches)
        self.misses.update(block.misses)
        self.unchanged.update(block.unchanged)
        self.events += block.events
        self.time_out_of_range += block.time_out_of_range
        self.incomplete.update(block.incomplete)
        self.evictions += block.evictions
        self.reasons_replaced.update(block.reasons_replaced)
        self.declared.update(block.declared)


@dataclass(frozen=True, slots=True)
class Fed:
    """A block's Events, in order, and its counts."""

    specs: list[EventSpec]
    counts: LineCounts


class LinePipeline:
    """Feeds blocks of complete lines through the pre-filter, the decoders and the processor."""

    def __init__(
        self,
        processor: Processor,
        *,
        year: int | None,
        max_line_bytes: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.processor = processor
        #: klog's year: fixed, or None to derive it from `clock` and each line's month.
        self.year = year
        self.clock = clock
        self.max_line_bytes = max_line_bytes
        self.counts = LineCounts()
        #: The time of the last line that had one: `replay`'s clock.
        self.last_time: float | None = None

    def feed(self, block: bytes, *, too_long: int = 0, default_time: float | None = None) -> Fed:
        """Process a block of complete lines; return the Events they call for, in order, and the
        block's counts. `too_long` counts lines the framer dropped before the block;
        `default_time` is the time of lines that carry none (the kubelet's, for the pod log)."""
        selection = select_lines(block, self.processor.rules.literals, self.max_line_bytes)
        specs: list[EventSpec] = []
        counts = LineCounts()
        undecodable, matches = counts.undecodable, counts.matches
        misses, unchanged = counts.misses, counts.unchanged
        times_dropped = 0
        processor = self.processor
        process = processor.process
        now = self.clock()
        processor.now = now.timestamp()
        year = self.year if self.year is not None else years_at(now)
        formats = processor.rules.formats
        # Declared formats cost nothing to a rules file without them: the call is the same.
        read = decode if not formats.declared else partial(decode, formats=formats)
        declared = None
        if formats.declared:
            # Every declared format is in the counts, 0 included: one that reads nothing shows.
            declared = counts.declared = Counter(dict.fromkeys(formats.names, 0))
        for line in selection.candidates:
            record = read(line, year=year)
            if type(record) is Undecodable:
                undecodable[record.reason] += 1
                continue
            assert type(record) is Record
            if declared is not None and record.format not in BUILTIN_FORMATS:
                declared[record.format] += 1
            if record.missing or record.level == UNKNOWN_LEVEL:
                _count_incomplete(record, counts.incomplete, timed=default_time is not None)
            if record.time is None and default_time is not None:
                record = replace(record, time=default_time)
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
            elif type(outcome) is Unchanged:
                unchanged[outcome.rule] += 1

        counts.lines = selection.lines + too_long
        counts.bytes = len(block)
        counts.too_long = selection.too_long + too_long
        counts.skipped = selection.lines - selection.too_long - len(selection.candidates)
        counts.time_out_of_range = times_dropped
        counts.evictions = processor.tracker.take_evictions()
        counts.durations = processor.take_durations()
        if processor.reasons_replaced:
            counts.reasons_replaced = processor.take_reasons_replaced()
        counts.events = len(specs)
        self.counts.add(counts)
        return Fed(specs, counts)


def _count_incomplete(record: Record, counts: Counter[str], *, timed: bool) -> None:
    """Count what `record` did not give, or gave in a form not understood (rare: kept off the
    loop above). `timed`: the source stamps every line (the kubelet's time, for the pod log),
    so a line without a time of its own still has a stable one."""
    counts.update(m for m in record.missing if not (timed and m == "time"))
    if record.level == UNKNOWN_LEVEL:
        counts["unknown_level"] += 1
