"""Decoding one log line, in any format a Kubernetes controller writes, into a `Record`.

The format is recognised per line, without configuration, because one controller's log often mixes
them (klog text from client-go beside zap JSON from controller-runtime, plain text at start-up):

- JSON objects: controller-runtime zap, klog JSON, logrus JSON and Go slog JSON;
- controller-runtime's console encoder: `<ts>\\t<LEVEL>\\t[<logger>\\t]<msg>\\t{json}`;
- klog text: `I1025 00:15:15.525108 1 file.go:116] "msg" key="value" ...`;
- logfmt (logrus text, go-kit): `time=... level=info msg="..." key=value`;
- operators in other languages, each as its logger's own source writes it: Python `logging` text
  in kopf's format (`[asctime] name [LEVEL] [namespace/name] message`), log4j2 text in Strimzi's
  pattern (`yyyy-MM-dd HH:mm:ss LEVEL Class:line - message`), and JSON from python-json-logger
  (kopf's `--log-format=json`), tracing-subscriber (Rust, kube-rs) and logstash-logback-encoder
  (Java, the Java Operator SDK), whose message, level, time or logger sit under other keys;
- records of several lines (framed by `sidecar.core.lines.multiline`): a Go panic becomes one
  `fatal` record, and klog's `key=<` multi-line values are joined into the value they stand for;
  a Python traceback or Java stack trace is the field `stack` of the line before it;
- and first of all, the formats the rules file declares (`formats.declared`).

This module chooses; each family's formats are read in `sidecar.core.lines.formats` (`json`,
`go`, `python`, `java`, `declared`), and why none read a line is said by `why_not`, for `explain`.

Nothing here raises on bad input: a line that is none of these decodes to an `Undecodable` that
says why, so the caller can count it. Invalid UTF-8 is replaced, never fatal. Nor is anything
guessed silently: a level given but not understood is `unknown` (which no rule's `level:` names),
and a record says in `missing` which of its time, level and message the line did not give.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from sidecar.core.lines import stacks
from sidecar.core.lines.formats import declared
from sidecar.core.lines.formats.common import parse_level, parse_time
from sidecar.core.lines.formats.declared import Formats
from sidecar.core.lines.formats.go import (
    KLOG_HEADER,
    YearOf,
    decode_klog_text,
    decode_logfmt,
    decode_panic,
    decode_zap_console,
    join_klog_values,
    klog_year,
    unquote_go,
    years_at,
)
from sidecar.core.lines.formats.java import LOG4J2, decode_log4j2
from sidecar.core.lines.formats.json import LIFTED_KEYS, json_object, record_from_mapping
from sidecar.core.lines.formats.python import PYTHON_TEXT, decode_python_text
from sidecar.core.lines.multiline import KLOG_OPEN, PANIC_HEADS
from sidecar.core.lines.records import Record
from sidecar.model import UndecodableReason

#: What other modules read from here, wherever in `formats` it is defined.
__all__ = [
    "BUILTIN_FORMATS",
    "CONTINUATION",
    "EMPTY",
    "INVALID_JSON",
    "LIFTED_KEYS",
    "UNRECOGNISED",
    "Undecodable",
    "YearOf",
    "decode",
    "json_object",
    "klog_year",
    "parse_level",
    "parse_time",
    "record_from_mapping",
    "unquote_go",
    "why_not",
    "years_at",
]


@dataclass(frozen=True, slots=True)
class Undecodable:
    """Why a line did not decode; `reason` is a bounded label value for metrics."""

    reason: UndecodableReason


#: The names of the built-in formats (`Record.format`); a declared format takes none of them.
BUILTIN_FORMATS: Final = frozenset(
    (
        "json",
        "zap-console",
        "klog",
        "logfmt",
        "go-panic",
        "kopf-text",
        "kopf-json",
        "python-json",
        "tracing-json",
        "logstash-json",
        "log4j2",
    )
)

EMPTY: Final = Undecodable("empty")
#: A line that continues the previous one (klog's multi-line `key=<` values, stack traces).
CONTINUATION: Final = Undecodable("continuation")
INVALID_JSON: Final = Undecodable("invalid_json")
UNRECOGNISED: Final = Undecodable("unrecognised")


def decode(
    line: bytes, *, year: int | YearOf, formats: Formats | None = None
) -> Record | Undecodable:
    """Decode one line (without its newline) into a record.

    `year` completes klog's timestamps, which carry no year: a fixed year (`replay --year`), or
    the year of a month as of the time the line is read (`years_at(now)`). A multi-line record
    comes as its lines joined by newlines. `formats`, the rules file's, are tried first (and the
    built-in ones after them unless it says not to); None: the built-in ones only.
    """
    if b"\n" in line:
        return _decode_lines(line, year, formats)
    if line[:1] in (b" ", b"\t") and line.strip():
        return CONTINUATION
    line = line.strip()
    if not line:
        return EMPTY
    if formats is not None and formats.declared:
        found = _decode_declared(line, formats)
        if found is not None:
            return found
        if not formats.builtin:
            # Only the declared formats: a line none reads is unrecognised (a stack's, alone,
            # still a continuation).
            text = line.decode("utf-8", "replace")
            return CONTINUATION if _STACK_LINE.match(text) else UNRECOGNISED
    first = line[0]
    if first == 0x7B:  # "{"
        return _decode_json_line(line)
    text = line.decode("utf-8", "replace")
    if first in b"IWEF" and (match := KLOG_HEADER.fullmatch(text)) is not None:
        return decode_klog_text(match, year)
    if b"\t" in line:
        record = decode_zap_console(text.split("\t"))
        if record is not None:
            return record
    # Before logfmt: these headers are exact, and a message may well hold `key=value` text.
    if first == 0x5B:  # "["
        record = decode_python_text(text)
        if record is not None:
            return record
    elif 0x30 <= first <= 0x39 and b" - " in line:  # a digit
        record = decode_log4j2(text)
        if record is not None:
            return record
    # A stack's line that came alone (its line in an earlier block): before logfmt, since an
    # exception's message may well hold `level=error msg=...`.
    if _STACK_LINE.match(text):
        return CONTINUATION
    if b"=" in line:
        record = decode_logfmt(text)
        if record is not None:
            return record
    return UNRECOGNISED


#: Lines of a stack, seen alone: a traceback's header and chain separators, a Java `Caused by:`,
#: and the exception line of either (`ValueError: bad`, `java.lang.IllegalStateException: x`).
_STACK_LINE = re.compile(
    r"(?:Traceback|Stack) \(most recent call last\):$|During handling of the above exception|"
    r"The above exception was the direct cause|(?:Caused|Wrapped) by: |"
    r"[A-Za-z_][\w.$]*(?:Error|Exception|Throwable|Warning|Exit|Interrupt|Group)(?::\s|$)"
)


def _decode_declared(line: bytes, formats: Formats) -> Record | None:
    """The line read by the first declared format that reads it, or None."""
    text = line.decode("utf-8", "replace")
    obj = json_object(line) if line[:1] == b"{" else None
    for fmt in formats.declared:
        record = declared.read(fmt, text, obj)
        if type(record) is Record:
            return record
    return None


def _decode_lines(data: bytes, year: int | YearOf, formats: Formats | None) -> Record | Undecodable:
    first = data.find(b"\n")
    head = data[:first]
    if head.startswith(PANIC_HEADS):
        return decode_panic(data.decode("utf-8", "replace").split("\n"))
    if head.endswith(KLOG_OPEN):
        return decode(
            join_klog_values(data.decode("utf-8", "replace").split("\n")),
            year=year,
            formats=formats,
        )
    rest = data[first + 1 :]
    if stacks.is_stack(rest) or stacks.is_headless(data):
        if stacks.is_headless(data):
            return CONTINUATION  # a stack without its line: never an Event of its own
        record = decode(head, year=year, formats=formats)
        if type(record) is Record:
            stack = rest.decode("utf-8", "replace")
            # A copy: the head's fields may be shared with nothing, but a record is immutable
            # by convention once built.
            record.fields = {
                **record.fields,
                "stack": stack,
                "exception": stacks.exception_of(stack),
            }
        return record
    return decode(head, year=year, formats=formats)


def _decode_json_line(line: bytes) -> Record | Undecodable:
    obj = json_object(line)
    return INVALID_JSON if obj is None else record_from_mapping(obj, "json")


def why_not(line: bytes, formats: Formats | None = None) -> list[str]:
    """Why each format tried on a line did not read it, in the order `decode` tries them (for
    `explain`; never on the hot path). Declared formats first, then the built-in ones (when
    the rules file keeps them); a format that reads the line ends the list, unnamed."""
    out: list[str] = []
    if b"\n" in line:
        if line.startswith(PANIC_HEADS):
            return out  # a Go panic: no format but its own is tried
        if stacks.is_headless(line):
            return ["a stack without its line (read before it, or none): a continuation"]
        line = line[: line.find(b"\n")]  # a record's first line is the one read
    stripped = line.strip()
    if not stripped or (line[:1] in (b" ", b"\t")):
        return out
    text = stripped.decode("utf-8", "replace")
    if formats is not None and formats.declared:
        obj = json_object(stripped) if stripped[:1] == b"{" else None
        for fmt in formats.declared:
            found = declared.read(fmt, text, obj)
            if type(found) is Record:
                return out
            out.append(f"declared format {fmt.name}: {found}")
        if not formats.builtin:
            out.append("built-in formats: off (formats.builtin: false)")
            return out
    if _STACK_LINE.match(text):
        out.append("a stack's line (an exception, a chain's words): it belongs to a line before")
        return out
    if stripped[:1] == b"{":
        out.append("json: invalid JSON" if json_object(stripped) is None else "json: read")
        return out if out[-1] != "json: read" else out[:-1]
    out.append("json: not JSON (no `{` first)")
    if KLOG_HEADER.fullmatch(text) is None:
        out.append("klog: no `I0102 15:04:05.000000 1 file.go:1]` header")
    else:
        return out
    if b"\t" not in stripped:
        out.append("zap-console: no tabs")
    elif decode_zap_console(text.split("\t")) is None:
        out.append("zap-console: no time and known level in its first two columns")
    else:
        return out
    if PYTHON_TEXT.fullmatch(text) is None:
        out.append("kopf-text: not `[YYYY-mm-dd HH:MM:SS,mmm] logger(20) [LEVEL(8)] message`")
    else:
        return out
    if LOG4J2.fullmatch(text) is None:
        out.append("log4j2: not `yyyy-MM-dd HH:mm:ss LEVEL Class:line - message`")
    else:
        return out
    if b"=" not in stripped:
        out.append("logfmt: no key=value pairs")
    elif decode_logfmt(text) is None:
        out.append("logfmt: no msg, message, level or lvl key")
    return out
