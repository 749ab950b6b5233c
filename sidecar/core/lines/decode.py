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
  `fatal` record, and klog's `key=<` multi-line values are joined into the value they stand for.

Nothing here raises on bad input: a line that is none of these decodes to an `Undecodable` that
says why, so the caller can count it. Invalid UTF-8 is replaced, never fatal. Nor is anything
guessed silently: a level given but not understood is `unknown` (which no rule's `level:` names),
and a record says in `missing` which of its time, level and message the line did not give.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, Final

import orjson

from sidecar.core.lines import declared, stacks
from sidecar.core.lines.declared import Formats
from sidecar.core.lines.multiline import KLOG_CLOSE, KLOG_OPEN, PANIC_HEADS
from sidecar.core.lines.records import UNKNOWN_LEVEL, Record, text_of
from sidecar.model import UndecodableReason


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

#: Every spelling of a level seen in controller logs, mapped onto (canonical level, verbosity).
_LEVELS: Final[dict[str, tuple[str, int]]] = {
    "trace": ("debug", 2),
    "debug": ("debug", 1),
    "dbg": ("debug", 1),
    "info": ("info", 0),
    "inf": ("info", 0),
    "notice": ("info", 0),
    "warn": ("warning", 0),
    "warning": ("warning", 0),
    "wrn": ("warning", 0),
    "error": ("error", 0),
    "err": ("error", 0),
    "dpanic": ("error", 0),
    "crit": ("fatal", 0),
    "critical": ("fatal", 0),
    "panic": ("fatal", 0),
    "fatal": ("fatal", 0),
}
_UNKNOWN: Final = (UNKNOWN_LEVEL, 0)
_KLOG_SEVERITY: Final = {"I": "info", "W": "warning", "E": "error", "F": "fatal"}
#: zap's V-levels: `Level(-2)` from the JSON encoder, `LEVEL(-2)` from the console encoder.
_ZAP_VLEVEL = re.compile(r"Level\((-?\d+)\)", re.IGNORECASE)

_TIME_KEYS: Final = ("ts", "time", "timestamp", "@timestamp")
_LEVEL_KEYS: Final = ("level", "lvl", "severity")
_MESSAGE_KEYS: Final = ("msg", "message")
#: Keys lifted out of a line's fields into the record's time, level, message and logger; a rule
#: must match them through `message:`, `level:` and `logger:`, never `fields:`.
LIFTED_KEYS: Final = frozenset((*_TIME_KEYS, *_LEVEL_KEYS, *_MESSAGE_KEYS, "logger"))

_KLOG_HEADER = re.compile(
    r"([IWEF])(\d\d)(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{6})\s+\d+ [^\]\s]+\] ?(.*)", re.DOTALL
)
#: One `key=value` pair of logfmt or klog's structured text; values may be Go-quoted strings.
#: Linear time: the look-behind lets a key start only where the previous character cannot be part
#: of a key, so a long bare token is scanned once, not once from each of its characters (which
#: backtracked quadratically: 100,000 characters took minutes). It finds exactly the pairs the
#: pattern without it finds, since a key's characters cannot contain the `=` that ends the key.
#: An unterminated quoted value scans to the end of the line at most once per line: after one,
#: every later `="` would have closed it.
_PAIR = re.compile(r'(?<![^\s="])([^\s="]+)=("(?:[^"\\]|\\.)*"|\S*)')
_QUOTED_PREFIX = re.compile(r'"(?:[^"\\]|\\.)*"')
_GO_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[abfnrtv\\\"'])")
_GO_SIMPLE_ESCAPES: Final = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    '"': '"',
    "'": "'",
}


#: The year of a klog text line from its month (1-12), since klog's timestamps carry none.
YearOf = Callable[[int], int]


#: `Record.missing` for each combination of (time, level, message) not found, built once.
_MISSING: Final = {
    (time, level, message): tuple(
        name for name, absent in (("time", time), ("level", level), ("message", message)) if absent
    )
    for time in (False, True)
    for level in (False, True)
    for message in (False, True)
}
_NO_TIME: Final = _MISSING[(True, False, False)]


def klog_year(month: int, now: datetime) -> int:
    """The year of a klog timestamp in `month`, read at `now` (so a pure function of both).

    A line is never from the future, give or take clock skew: one whose month is more than a
    month ahead of now was written last year (a December line read on January 1st), anything
    else this year. Taken per line, so a daemon running over New Year dates January's lines in
    the new year.
    """
    return now.year - 1 if month > now.month + 1 else now.year


def years_at(now: datetime) -> YearOf:
    """`klog_year` with `now` fixed: what `decode` takes for a block read at `now`."""
    return partial(klog_year, now=now)


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
            return (
                CONTINUATION
                if _STACK_LINE.match(line.decode("utf-8", "replace"))
                else (UNRECOGNISED)
            )
    first = line[0]
    if first == 0x7B:  # "{"
        return _decode_json_line(line)
    text = line.decode("utf-8", "replace")
    if first in b"IWEF" and (match := _KLOG_HEADER.fullmatch(text)) is not None:
        return _decode_klog_text(match, year)
    if b"\t" in line:
        record = _decode_zap_console(text.split("\t"))
        if record is not None:
            return record
    # Before logfmt: these headers are exact, and a message may well hold `key=value` text.
    if first == 0x5B:  # "["
        record = _decode_python_text(text)
        if record is not None:
            return record
    elif 0x30 <= first <= 0x39 and b" - " in line:  # a digit
        record = _decode_log4j2(text)
        if record is not None:
            return record
    # A stack's line that came alone (its line in an earlier block): before logfmt, since an
    # exception's message may well hold `level=error msg=...`.
    if _STACK_LINE.match(text):
        return CONTINUATION
    if b"=" in line:
        record = _decode_logfmt(text)
        if record is not None:
            return record
    return UNRECOGNISED


#: Lines of a stack, seen alone: a traceback's header and chain separators, a Java `Caused by:`,
#: and the exception line of either (`ValueError: bad`, `java.lang.IllegalStateException: x`).
_STACK_LINE = re.compile(
    r"Traceback \(most recent call last\):$|During handling of the above exception|"
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


def json_object(line: bytes) -> dict[str, Any] | None:
    """The line as a JSON object, or None (invalid UTF-8 replaced first, as below)."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        try:
            obj = orjson.loads(line.decode("utf-8", "replace"))
        except orjson.JSONDecodeError:
            return None
    return obj if type(obj) is dict else None


def _decode_lines(data: bytes, year: int | YearOf, formats: Formats | None) -> Record | Undecodable:
    first = data.find(b"\n")
    head = data[:first]
    if head.startswith(PANIC_HEADS):
        return _decode_panic(data.decode("utf-8", "replace").split("\n"))
    if head.endswith(KLOG_OPEN):
        return decode(
            _join_klog_values(data.decode("utf-8", "replace").split("\n")),
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


_GO_FRAME_OFFSET = re.compile(r" \+0x[0-9a-f]+$")


def _decode_panic(lines: list[str]) -> Record:
    """`panic: value`, `[signal ...]`, `goroutine N [running]:`, frames (function, `\tfile:line`).

    The message is the panic's value; the fields name the goroutine, the first frame of the code
    that panicked (`function`, `location`) and the stack as far as the record goes.
    """
    head = lines[0]
    prefix = "panic: " if head.startswith("panic: ") else "fatal error: "
    fields: dict[str, Any] = {"panic": prefix[:-2]}
    for number, line in enumerate(lines[1:], start=1):
        if line.startswith("[signal "):
            fields["signal"] = line.strip("[]")
        elif line.startswith("goroutine "):
            fields["goroutine"] = line.split(" ", 2)[1]
            stack = lines[number + 1 :]
            fields["stack"] = "\n".join(stack)
            if len(stack) >= 2:
                fields["function"] = stack[-2]
                fields["location"] = _GO_FRAME_OFFSET.sub("", stack[-1].strip())
            break
    message = head[len(prefix) :].removesuffix(" [recovered]")
    # A panic carries no time: the Event gets the read time (or the previous line's).
    return Record(
        message=message, level="fatal", fields=fields, format="go-panic", missing=_NO_TIME
    )


def _join_klog_values(lines: list[str]) -> bytes:
    """klog's `key=<`, tab-indented lines, ` >` as the one line `key="line\nline"` it stands for."""
    out = [lines[0][:-1]]  # drop the `<` of `=<`
    value: list[str] = []
    for line in lines[1:]:
        if line.startswith(KLOG_CLOSE.decode()):
            out.append(orjson.dumps("\n".join(value)).decode())
            value = []
            rest = line[len(KLOG_CLOSE) :]
            if rest.endswith(KLOG_OPEN.decode()):
                out.append(rest[:-1])
            else:
                out.append(rest)
                return "".join(out).encode()
        else:
            value.append(line[1:])
    out.append(orjson.dumps("\n".join(value)).decode())  # cut short: the value as far as it goes
    return "".join(out).encode()


def _decode_json_line(line: bytes) -> Record | Undecodable:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        # orjson refuses invalid UTF-8 outright; a replaced copy may still be a valid object.
        try:
            obj = orjson.loads(line.decode("utf-8", "replace"))
        except orjson.JSONDecodeError:
            return INVALID_JSON
    if type(obj) is not dict:
        return INVALID_JSON
    return record_from_mapping(obj, "json")


def record_from_mapping(obj: dict[str, Any], fmt: str) -> Record:
    """Lift the well-known keys out of a decoded JSON or logfmt object; the rest are fields.

    `obj` is consumed: the lifted keys are popped from it and it becomes the record's fields.
    A time that parses but is out of range (years 1-9999; infinite, NaN) is dropped and flagged
    in `time_out_of_range`, so the line still makes its Event (with its read time) and the
    caller counts it; one that does not parse at all is no time, listed in `missing`.

    JSON lines lacking one of the well-known keys are then tried as the JSON encoders of other
    languages write them (`_other_json_shapes`); the keys those are read from stay in the
    fields, so rules written against them before still match.
    """
    # controller-runtime's, klog's and zap's spellings (`msg`, `level`, `ts`) are tried first,
    # inline: this runs for every candidate line.
    message = obj.pop("msg", _NONE)
    if message is _NONE:
        message = _pop_first(obj, _MESSAGE_KEYS)
    level_key = "level"
    raw_level = obj.pop("level", _NONE)
    if raw_level is _NONE:
        level_key, raw_level = _pop_first_key(obj, _LEVEL_KEYS)
    time_key = "ts"
    raw_time = obj.pop("ts", _NONE)
    if raw_time is _NONE:
        time_key, raw_time = _pop_first_key(obj, _TIME_KEYS)
    logger = obj.pop("logger", _NONE)
    # Only JSON lines that lack a well-known key, and then without a call unless a key that one
    # of the shapes always writes is there: Go lines without a logger are common.
    if (
        (logger is _NONE or message is None or raw_level is None)
        and fmt == "json"
        and (
            message is None
            or raw_level is None
            or "target" in obj
            or "logger_name" in obj
            or level_key == "severity"
        )
    ):
        shape = _other_json_shapes(
            obj,
            message=message,
            raw_level=raw_level,
            raw_time=raw_time,
            logger=logger,
            level_key=level_key,
            time_key=time_key,
        )
        if shape is not None:
            fmt, message, raw_level, raw_time, logger = shape
    level_missing = False
    if raw_level is not None:
        # The usual spellings inline (a call costs more than the look-up), the rest parsed.
        known = _LEVELS.get(raw_level) if type(raw_level) is str else None
        if known is None:
            known = parse_level(raw_level)
            level_missing = raw_level == ""
        level, verbosity = known
    elif "v" in obj:
        # klog JSON has no level, only the V-level of info lines.
        verbosity = max(0, _as_int(obj.pop("v")))
        level = "info" if verbosity <= 0 else "debug"
    elif "err" in obj:
        level, verbosity = "error", 0  # klog JSON's error lines: `err` and no `v`
    else:
        level, verbosity, level_missing = "info", 0, True
    stamp = _parse_time_unchecked(raw_time) if raw_time is not None else None
    out_of_range = stamp is not None and not _EARLIEST <= stamp <= _LATEST
    if logger is _NONE:
        logger = ""
    record = Record(
        message=message if type(message) is str else ("" if message is None else text_of(message)),
        level=level,
        verbosity=verbosity,
        time=None if out_of_range else stamp,
        time_out_of_range=out_of_range,
        logger=logger if type(logger) is str else str(logger),
        fields=obj,
        format=fmt,
    )
    if stamp is None or level_missing or message is None:
        # Set here, before anyone holds the record, rather than passed: an argument costs
        # every line, and nearly every line has all three.
        record.missing = _MISSING[(stamp is None, level_missing, message is None)]
    return record


#: Not in the line (a key can hold JSON null, which is None).
_NONE: Final = object()
#: tracing-subscriber's level names, exactly as it writes them (tracing-serde's `SerializeLevel`).
_TRACING_LEVELS: Final = frozenset(("TRACE", "DEBUG", "INFO", "WARN", "ERROR"))

#: (format, message, raw level, raw time, logger) as read from a shape below.
_Shape = tuple[str, Any, Any, Any, Any]


def _other_json_shapes(
    obj: dict[str, Any],
    *,
    message: Any,
    raw_level: Any,
    raw_time: Any,
    logger: Any,
    level_key: str,
    time_key: str,
) -> _Shape | None:
    """The JSON of loggers that name the message, level, time or logger differently.

    Each is recognised by keys its encoder always writes, so that a Go line that merely has a
    field of the same name keeps its meaning:

    - tracing-subscriber's `fmt().json()` (tracing-subscriber/src/fmt/format/json.rs):
      `timestamp`, `level`, `fields` (the event's fields, the message as `fields.message`),
      `target`, then `span` and `spans` when inside spans; with `flatten_event(true)` the
      event's fields are top-level. `target` is the logger.
    - logstash-logback-encoder's `LogstashEncoder` (fieldnames/LogstashFieldNames.java):
      `@timestamp`, `@version`, `message`, `logger_name`, `thread_name`, `level`,
      `level_value`, then the MDC entries under their own names. `logger_name` is the logger.
    - python-json-logger (pythonjsonlogger/core.py), given `LogRecord` attributes such as
      `%(asctime)s %(levelname)s %(name)s %(message)s`: `levelname` is the level, `name` the
      logger, `asctime` (or `created`) the time.
    - kopf's `--log-format=json` (kopf/_core/actions/loggers.py, `ObjectJsonFormatter`):
      python-json-logger with `message`, `timestamp`, `severity` and the object as `object`,
      all of which the well-known keys already cover; only its name is told apart here.
    """
    if logger is _NONE:
        target = obj.get("target")
        if type(target) is str and (
            "fields" in obj
            or "spans" in obj
            or "span" in obj
            or (time_key == "timestamp" and type(raw_level) is str and raw_level in _TRACING_LEVELS)
        ):
            if message is None:
                event = obj.get("fields")
                if type(event) is dict:
                    message = event.get("message")
            return "tracing-json", message, raw_level, raw_time, target
        logger_name = obj.get("logger_name")
        if type(logger_name) is str and ("level_value" in obj or "@version" in obj):
            return "logstash-json", message, raw_level, raw_time, logger_name
    if raw_level is None and "levelname" in obj:
        name = obj.get("name")
        if logger is _NONE and type(name) is str:
            logger = name
        if raw_time is None:
            raw_time = obj.get("asctime")
            if raw_time is None or _parse_time_unchecked(raw_time) is None:
                raw_time = obj.get("created")
        return "python-json", message, obj["levelname"], raw_time, logger
    if level_key == "severity" and type(obj.get("object")) is dict:
        return "kopf-json", message, raw_level, raw_time, logger
    return None


def _pop_first(obj: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if key in obj:
            return obj.pop(key)
    return None


def _pop_first_key(obj: dict[str, Any], keys: tuple[str, ...]) -> tuple[str, Any]:
    """`_pop_first`, and which key it was ("" when none)."""
    for key in keys:
        if key in obj:
            return key, obj.pop(key)
    return "", None


def parse_level(raw: Any) -> tuple[str, int]:
    """Map a level value onto (canonical level, verbosity).

    No level at all (None, "") is `info`, as a line without a level key is. A level that is
    given but not known is `UNKNOWN_LEVEL`, never `info`: a rule's `level: error` must not
    quietly miss an error line written as `50` or `SEVERE`. Numbers are read only where every
    logger agrees: 0 is info and -n is V-level n (zap's numbering of logr's V-levels); positive
    numbers mean different things to zap (1 warn ... 5 fatal), logrus (0 panic ... 6 trace),
    logr's funcr (V-levels), pino (30 info) and Python (20 info), so they are unknown.
    """
    if type(raw) is int:
        # logr/zap numeric levels: negative is more verbose.
        if raw == 0:
            return ("info", 0)
        return ("debug", -raw) if raw < 0 else _UNKNOWN
    known = _LEVELS.get(raw) if type(raw) is str else None  # already lower case: most lines
    if known is not None:
        return known
    if raw is None or raw == "":
        return ("info", 0)
    text = str(raw)
    known = _LEVELS.get(text.lower())
    if known is not None:
        return known
    if match := _ZAP_VLEVEL.fullmatch(text):
        verbosity = -int(match.group(1))
        return ("debug", verbosity) if verbosity > 0 else ("info", 0)
    # slog's offset levels such as "INFO+2" or "WARN-4".
    base = text.lower().split("+", 1)[0].split("-", 1)[0]
    return _LEVELS.get(base, _UNKNOWN)


def parse_time(raw: Any) -> float | None:
    """RFC 3339 text, or epoch seconds or milliseconds (number or text), to epoch seconds.

    A time without an offset is UTC (never the host's zone); anything outside the years 1-9999,
    infinite or NaN is no time at all, since Event timestamps must be renderable.
    """
    value = _parse_time_unchecked(raw)
    return value if value is not None and _EARLIEST <= value <= _LATEST else None


def _parse_time_unchecked(raw: Any) -> float | None:
    """`parse_time` without the range check (a NaN is out of every range, never None)."""
    if type(raw) is str:
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            try:
                raw = float(raw)
            except ValueError:
                return None
        else:
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return parsed.timestamp()
    if type(raw) in (int, float):
        value = float(raw)
        # Seconds until the year 5138; anything larger is milliseconds.
        if value > 1e11:
            value /= 1000.0
        return value
    return None


#: The range `datetime` can render (years 1 to 9999); also rejects inf and NaN.
_EARLIEST = datetime(1, 1, 1, tzinfo=UTC).timestamp()
_LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()


def _as_int(raw: Any) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return 0


def _decode_klog_text(match: re.Match[str], year: int | YearOf) -> Record:
    severity, month_text, day, hour, minute, second, micro, rest = match.groups()
    month = int(month_text)
    try:
        stamp = datetime(
            year if isinstance(year, int) else year(month),
            month,
            int(day),
            int(hour),
            int(minute),
            int(second),
            int(micro),
            tzinfo=UTC,
        ).timestamp()
    except ValueError:
        stamp = None
    if rest.startswith('"') and (quoted := _QUOTED_PREFIX.match(rest)) is not None:
        # Structured klog: a quoted message followed by key=value pairs.
        message = unquote_go(quoted.group())
        fields = _parse_pairs(rest[quoted.end() :])
    else:
        message, fields = rest, {}
    # klog's contextual logging adds `logger="name"`, which JSON lines carry as the logger.
    logger = fields.pop("logger", "")
    record = Record(
        message=message,
        level=_KLOG_SEVERITY[severity],
        time=stamp,
        logger=logger,
        fields=fields,
        format="klog",
    )
    if stamp is None:  # a date that does not exist, such as February 30th
        record.missing = _NO_TIME  # set, not passed: see record_from_mapping
    return record


def _decode_zap_console(parts: list[str]) -> Record | None:
    """`ts LEVEL [logger] [caller] msg [{json}]`, controller-runtime's development encoder."""
    if len(parts) < 3:
        return None
    level_text = parts[1]
    known = _LEVELS.get(level_text.lower())
    if known is None:
        if not level_text.lower().startswith("level("):
            return None
        known = parse_level(level_text)
    stamp = parse_time(parts[0])
    if stamp is None:
        return None
    rest = parts[2:]
    fields: dict[str, Any] = {}
    if len(rest) > 1 and rest[-1].startswith("{"):
        try:
            loaded = orjson.loads(rest[-1])
        except orjson.JSONDecodeError:
            loaded = None
        if type(loaded) is dict:
            fields = loaded
            rest = rest[:-1]
    message = rest[-1]
    logger = rest[0] if len(rest) > 1 else ""
    return Record(
        message=message,
        level=known[0],
        verbosity=known[1],
        time=stamp,
        logger=logger,
        fields=fields,
        format="zap-console",
    )


#: Python `logging` with kopf's format string, `LogFormat.FULL` in kopf/_core/actions/loggers.py:
#: `[%(asctime)s] %(name)-20.20s [%(levelname)-8.8s] %(message)s`. The logger name is padded
#: or cut to exactly 20 characters and the level name to 8; asctime is `logging.Formatter`'s
#: default, `%Y-%m-%d %H:%M:%S,mmm`, in the controller's local time zone.
_PYTHON_TEXT = re.compile(
    r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\] (.{20}) \[(.{8})\] (.*)", re.DOTALL
)
#: kopf's `ObjectPrefixingMixin`: `[namespace/name] ` before the message of an object's logger
#: (`kopf.objects`, the only logger that has one), `[name] ` for a cluster-scoped object.
_KOPF_OBJECT = re.compile(r"\[(?:([a-z0-9](?:[-a-z0-9]*[a-z0-9])?)/)?([^\]\s/]+)\] ")
_KOPF_OBJECTS_LOGGER: Final = "kopf.objects"


def _decode_python_text(text: str) -> Record | None:
    """`[2024-01-11 14:21:03,806] kopf.objects         [INFO    ] [ns/name] message`.

    The time has no offset and is read as UTC, like every such time here. An object's prefix
    becomes the fields `namespace` (when there is one) and `name`, and is taken off the
    message, so `message:` conditions and `{message}` see what the handler logged.
    """
    match = _PYTHON_TEXT.fullmatch(text)
    if match is None:
        return None
    stamp_text, name, level_name, message = match.groups()
    level, verbosity = parse_level(level_name.rstrip(" "))
    logger = name.rstrip(" ")
    fields: dict[str, Any] = {}
    if logger == _KOPF_OBJECTS_LOGGER and (prefix := _KOPF_OBJECT.match(message)) is not None:
        namespace, object_name = prefix.groups()
        if namespace is not None:
            fields["namespace"] = namespace
        fields["name"] = object_name
        message = message[prefix.end() :]
    stamp = parse_time(stamp_text)
    return Record(
        message=message,
        level=level,
        verbosity=verbosity,
        time=stamp,
        logger=logger,
        fields=fields,
        format="kopf-text",
        missing=_NO_TIME if stamp is None else (),
    )


#: log4j2's PatternLayout as Strimzi's operators configure it (their log4j2.properties,
#: e.g. cluster-operator/src/main/resources/log4j2.properties):
#: `%d{yyyy-MM-dd HH:mm:ss} %-5p %c{1}:%L - %m%n`: the level padded to 5 characters, the
#: logger's last name part, the line number (empty when log4j2 has no location).
_LOG4J2 = re.compile(
    r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:[.,]\d{3})?) ([A-Z]+) +([^\s:]*):(\d*) - (.*)",
    re.DOTALL,
)


def _decode_log4j2(text: str) -> Record | None:
    """`2024-01-11 14:21:03 INFO  KafkaAssemblyOperator:123 - message`; the time is UTC."""
    match = _LOG4J2.fullmatch(text)
    if match is None:
        return None
    stamp_text, level_name, logger, line, message = match.groups()
    level, verbosity = parse_level(level_name)
    stamp = parse_time(stamp_text)
    return Record(
        message=message,
        level=level,
        verbosity=verbosity,
        time=stamp,
        logger=logger,
        fields={"line": line} if line else {},
        format="log4j2",
        missing=_NO_TIME if stamp is None else (),
    )


def _decode_logfmt(text: str) -> Record | None:
    fields = _parse_pairs(text)
    if not any(key in fields for key in ("msg", "message", "level", "lvl")):
        return None
    return record_from_mapping(fields, "logfmt")


def _parse_pairs(text: str) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key, value in _PAIR.findall(text):
        fields[key] = unquote_go(value) if value.startswith('"') else value
    return fields


def unquote_go(quoted: str) -> str:
    """Undo Go's `strconv.Quote` (klog and logrus quote values with it).

    JSON covers the common escapes; Go's `\\x`, `\\a`, `\\v`, `\\U` are handled by hand because no
    library parses Go string literals. A value cut short (no closing quote) is kept as written.
    """
    if len(quoted) < 2 or not quoted.endswith('"'):
        return quoted
    if "\\" not in quoted:
        return quoted[1:-1]
    body = quoted[1:-1]
    if (len(body) - len(body.rstrip("\\"))) % 2:
        return quoted  # the closing quote is escaped: the value was cut short
    try:
        loaded = orjson.loads(quoted)
    except orjson.JSONDecodeError:
        return _GO_BYTES.sub(_replace_go_bytes, _GO_ESCAPE.sub(_replace_go_escape, body))
    return loaded if type(loaded) is str else quoted


#: Go writes `\xNN` only for bytes that are not valid UTF-8; a run of them is decoded together.
_GO_BYTES = re.compile(r"(?:\\x[0-9a-fA-F]{2})+")


def _replace_go_bytes(match: re.Match[str]) -> str:
    raw = bytes(int(match.group()[i + 2 : i + 4], 16) for i in range(0, len(match.group()), 4))
    return raw.decode("utf-8", "replace")


def _replace_go_escape(match: re.Match[str]) -> str:
    escape = match.group(1)
    if escape[0] == "x":
        return match.group()  # left for _replace_go_bytes
    if escape[0] in "uU":
        code = int(escape[1:], 16)
        # Lone surrogates and values past U+10FFFF are not characters; UTF-8 cannot carry them.
        if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
            return "\ufffd"
        return chr(code)
    return _GO_SIMPLE_ESCAPES[escape]


def why_not(line: bytes, formats: Formats | None = None) -> list[str]:
    """Why each format tried on a line did not read it, in the order `decode` tries them (for
    `explain`; never on the hot path). Declared formats first, then the built-in ones (when
    the rules file keeps them); a format that reads the line ends the list, unnamed."""
    out: list[str] = []
    if b"\n" in line:
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
    if _KLOG_HEADER.fullmatch(text) is None:
        out.append("klog: no `I0102 15:04:05.000000 1 file.go:1]` header")
    else:
        return out
    if b"\t" not in stripped:
        out.append("zap-console: no tabs")
    elif _decode_zap_console(text.split("\t")) is None:
        out.append("zap-console: no time and known level in its first two columns")
    else:
        return out
    if _PYTHON_TEXT.fullmatch(text) is None:
        out.append("kopf-text: not `[YYYY-mm-dd HH:MM:SS,mmm] logger(20) [LEVEL(8)] message`")
    else:
        return out
    if _LOG4J2.fullmatch(text) is None:
        out.append("log4j2: not `yyyy-MM-dd HH:mm:ss LEVEL Class:line - message`")
    else:
        return out
    if b"=" not in stripped:
        out.append("logfmt: no key=value pairs")
    elif _decode_logfmt(text) is None:
        out.append("logfmt: no msg, message, level or lvl key")
    return out
