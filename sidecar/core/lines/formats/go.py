"""Go's loggers in text: klog's header lines, controller-runtime's console encoder, logfmt
(logrus text, go-kit), and the records of several lines Go programs write: a panic's stack and
klog's `key=<` multi-line values (framed by `sidecar.core.lines.multiline`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any, Final

import orjson

from sidecar.core.lines.formats.common import LEVEL_NAMES, NO_TIME, parse_level, parse_time
from sidecar.core.lines.formats.json import record_from_mapping
from sidecar.core.lines.multiline import KLOG_CLOSE, KLOG_OPEN
from sidecar.core.lines.records import Record

_KLOG_SEVERITY: Final = {"I": "info", "W": "warning", "E": "error", "F": "fatal"}
KLOG_HEADER = re.compile(
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


_GO_FRAME_OFFSET = re.compile(r" \+0x[0-9a-f]+$")


def decode_panic(lines: list[str]) -> Record:
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
    return Record(message=message, level="fatal", fields=fields, format="go-panic", missing=NO_TIME)


def join_klog_values(lines: list[str]) -> bytes:
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


def decode_klog_text(match: re.Match[str], year: int | YearOf) -> Record:
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
        record.missing = NO_TIME  # set, not passed: see record_from_mapping
    return record


def decode_zap_console(parts: list[str]) -> Record | None:
    """`ts LEVEL [logger] [caller] msg [{json}]`, controller-runtime's development encoder."""
    if len(parts) < 3:
        return None
    level_text = parts[1]
    known = LEVEL_NAMES.get(level_text.lower())
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


def decode_logfmt(text: str) -> Record | None:
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
