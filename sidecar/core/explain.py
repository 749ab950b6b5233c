"""`explain`: why a line became an Event, or why it did not, step by step.

Every step is the production one: the pre-filter is `scan.select_lines`, the decoder `decode`, the
rules and the transition state `pipeline.Processor.process` (given a `Trace` to fill in), so what
this says about a line is what `run` does with it. The Event itself is recorded by the caller
(`sidecar.offline.replay.explain`), through the same Recorder and correlator as `replay`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sidecar.core.events.corev1 import Event, rfc3339
from sidecar.core.lines.decode import Undecodable, YearOf, decode, why_not
from sidecar.core.lines.multiline import spans
from sidecar.core.lines.records import Record, text_of
from sidecar.core.lines.scan import select_lines
from sidecar.core.pipeline import Consumed, Outcome, Processor, RuleMiss, Trace, Unchanged
from sidecar.model import EventSpec


@dataclass(frozen=True, slots=True)
class LineTrace:
    """One line's way through the pipeline, and where it stopped."""

    #: 1-based, as editors count (a multi-line record's first line).
    number: int
    text: str
    too_long: bool = False
    #: The pre-filter passed over the line: it holds none of the rules' literals.
    skipped: bool = False
    #: Why the line did not decode, when it did not.
    undecodable: str | None = None
    #: Why each format tried before the one that read the line (or all, when none did) did not.
    tried: tuple[str, ...] = ()
    record: Record | None = None
    trace: Trace | None = None
    outcome: Outcome = None


def explain_line(
    processor: Processor,
    line: bytes,
    number: int,
    *,
    year: int | YearOf,
    max_line_bytes: int,
) -> LineTrace:
    """Run one line (without its newline; a multi-line record's lines joined by newlines)
    through the pipeline, noting every step.

    The processor's transition state carries over from line to line, as in `run`.
    """
    text = line.decode("utf-8", "replace")
    selection = select_lines(line + b"\n", processor.rules.literals, max_line_bytes)
    if selection.too_long:
        return LineTrace(number, text, too_long=True)
    if not selection.candidates:
        return LineTrace(number, text, skipped=True)
    formats = processor.rules.formats
    record = decode(line, year=year, formats=formats)
    tried = tuple(why_not(line, formats))
    if type(record) is Undecodable:
        return LineTrace(number, text, undecodable=record.reason, tried=tried)
    assert type(record) is Record
    # A line read by a built-in format: only the declared ones that did not read it are news
    # (that klog's header is not on a JSON line is not).
    tried = tuple(why for why in tried if why.startswith("declared format "))
    trace = Trace()
    outcome = processor.process(record, trace)
    processor.take_durations()  # for metrics only: not kept for a whole file
    return LineTrace(number, text, record=record, trace=trace, outcome=outcome, tried=tried)


def split_records(block: bytes, limit: int) -> list[bytes]:
    """The records of a block of complete lines, as the pre-filter sees them: each line alone,
    except a multi-line record (`sidecar.core.lines.multiline`: a Go panic, a klog multi-line
    value), which is one, its lines joined by newlines."""
    out: list[bytes] = []
    position = 0
    for start, end in spans(block, limit):
        out.extend(block[position:start].split(b"\n")[:-1])
        out.append(block[start:end])
        position = end + 1
    out.extend(block[position:].split(b"\n")[:-1])
    return out


@dataclass(frozen=True, slots=True)
class Recorded:
    """What the Recorder did with a line's Event: `create`, `patch` or a drop cause, and the
    Event as stored afterwards (None when it was dropped)."""

    outcome: str
    event: Event | None


def _time(seconds: float | None) -> str | None:
    return None if seconds is None else rfc3339(seconds)


def _verdict(line: LineTrace) -> str:
    outcome = line.outcome
    if line.too_long:
        return "too_long"
    if line.skipped:
        return "skipped"
    if line.undecodable is not None:
        return "undecodable"
    if outcome is None:
        return "no_rule"
    if type(outcome) is RuleMiss:
        return "missing_field"
    if type(outcome) is Unchanged:
        return "unchanged"
    if type(outcome) is Consumed:
        return "consumed"
    return "event"


def to_json(line: LineTrace, written: Recorded | None) -> dict[str, Any]:
    """The trace as one JSON object (`explain -o json`), for tools."""
    out: dict[str, Any] = {"line": line.number, "text": line.text, "verdict": _verdict(line)}
    if line.undecodable is not None:
        out["undecodable"] = line.undecodable
    if line.tried:
        out["formats_tried"] = list(line.tried)
    record = line.record
    if record is not None:
        out["record"] = {
            "format": record.format,
            "time": _time(record.time),
            "level": record.level,
            "logger": record.logger,
            "message": record.message,
            "fields": record.fields,
            "missing": list(record.missing),
        }
    trace = line.trace
    if trace is not None:
        out["rules"] = [
            {"rule": tried.rule, "matched": True}
            if tried.failed is None
            else {
                "rule": tried.rule,
                "matched": False,
                "failed": tried.failed,
                "wants": tried.wants,
                "seen": tried.seen,
            }
            for tried in trace.tried
        ]
        if trace.captures:
            out["captures"] = trace.captures
        if trace.target is not None:
            target = trace.target
            out["object"] = {
                "kind": target.kind,
                "name": target.name,
                "namespace": target.namespace,
                "apiVersion": target.api_version,
                "group": target.api_group,
            }
        if trace.key is not None:
            out["transition"] = {
                "key": list(trace.key),
                "before": trace.before,
                "after": trace.after,
                "case": trace.case,
                "emit": trace.emit,
            }
    outcome = line.outcome
    if type(outcome) is RuleMiss:
        out["missing"] = outcome.field
    if type(outcome) is EventSpec:
        out["spec"] = {"type": outcome.type, "reason": outcome.reason, "message": outcome.message}
    if written is not None:
        out["write"] = written.outcome
        if written.event is not None:
            out["event"] = written.event.to_body()
    return out


def format_text(line: LineTrace, written: Recorded | None) -> str:
    """The trace for people: one paragraph per line, indented steps."""
    out = [f"line {line.number}: {_shorten(line.text, 160)}"]
    say = out.append
    if line.too_long:
        say("  too long: dropped before decoding (--max-line-bytes)")
    elif line.skipped:
        say("  skipped by the pre-filter: the line holds no literal any rule needs")
    elif line.undecodable is not None:
        say(f"  undecodable: {line.undecodable}")
    for why in line.tried:
        say(f"  format tried: {why}")
    record, trace = line.record, line.trace
    if record is not None:
        say(
            f"  record: {record.format}, time {_time(record.time) or '(none)'}, "
            f"level {record.level}"
            + (f", logger {record.logger}" if record.logger else "")
            + f", message {text_of(record.message)}"
        )
        if record.fields:
            say("    fields: " + " ".join(f"{k}={_one_line(v)}" for k, v in record.fields.items()))
        if record.missing:
            say(
                f"    not in the line: {', '.join(record.missing)} (stand-ins: the read time, "
                "level info, an empty message)"
            )
    if trace is not None:
        for tried in trace.tried:
            if tried.failed is None:
                say(f"  rule {tried.rule}: matched")
            else:
                seen = "(absent)" if tried.seen is None else text_of(tried.seen)
                say(f"  rule {tried.rule}: {tried.failed} wants {tried.wants}; the line has {seen}")
        if not trace.tried or trace.tried[-1].failed is not None:
            say("  no rule matched")
        if trace.captures:
            say("  captures: " + " ".join(f"{k}={_one_line(v)}" for k, v in trace.captures.items()))
        if trace.target is not None:
            target = trace.target
            where = f"{target.namespace}/{target.name}" if target.namespace else target.name
            version = target.api_version or (
                f"group {target.api_group}" if target.api_group else "version from discovery"
            )
            say(f"  object: {target.kind} {where} ({version})")
        if trace.key is not None:
            before = "(nothing yet)" if trace.before is None else trace.before
            say(f"  transition {'/'.join(trace.key)}: {before} -> {trace.after}")
    outcome = line.outcome
    if type(outcome) is RuleMiss:
        say(f"  missing field: {outcome.field} (counted in rule_misses; no Event)")
    elif type(outcome) is Unchanged:
        if trace is not None and not trace.emit:
            say(f"  case {_case(trace)} says emit: false: no Event")
        elif trace is not None and trace.before is None:
            say("  first sighting and the rule says first: skip: no Event")
        else:
            say("  state unchanged: no Event")
    elif type(outcome) is Consumed:
        say("  the rule says emit: false: the line is consumed, no Event (later rules skip it)")
    elif type(outcome) is EventSpec:
        chosen = f" (by {_case(trace)})" if trace is not None and trace.key is not None else ""
        say(f"  event{chosen}: {outcome.type} {outcome.reason}: {outcome.message}")
    if written is not None:
        event = written.event
        if event is None:
            say(f"  dropped: {written.outcome}")
        else:
            say(
                f"  {written.outcome}: {event.namespace}/{event.name} count {event.count}"
                + (f", message {event.message}" if event.message != _spec_message(outcome) else "")
            )
    return "\n".join(out)


def _case(trace: Trace) -> str:
    return "the rule's default" if trace.case is None else f"cases[{trace.case}]"


def _spec_message(outcome: Outcome) -> str | None:
    return outcome.message if type(outcome) is EventSpec else None


def _one_line(value: Any) -> str:
    return _shorten(text_of(value).replace("\n", "\\n"), 120)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
