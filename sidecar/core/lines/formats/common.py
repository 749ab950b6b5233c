"""What every line format reads alike: level names, times, and what a record lacks.

Each format finds the level, time and message where its logger writes them; how such a value
reads is the same for all, so that a rule's `level: warning` means klog's `W`, logrus'
`warning` and slog's `WARN` alike, and a time without an offset is UTC whatever wrote it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Final

from sidecar.core.lines.records import UNKNOWN_LEVEL, Record

#: Every spelling of a level seen in controller logs, mapped onto (canonical level, verbosity).
LEVEL_NAMES: Final[dict[str, tuple[str, int]]] = {
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
UNKNOWN: Final = (UNKNOWN_LEVEL, 0)
#: zap's V-levels: `Level(-2)` from the JSON encoder, `LEVEL(-2)` from the console encoder.
ZAP_VLEVEL = re.compile(r"Level\((-?\d+)\)", re.IGNORECASE)

#: `Record.missing` for each combination of (time, level, message) not found, built once.
MISSING: Final = {
    (time, level, message): tuple(
        name for name, absent in (("time", time), ("level", level), ("message", message)) if absent
    )
    for time in (False, True)
    for level in (False, True)
    for message in (False, True)
}
NO_TIME: Final = MISSING[(True, False, False)]


def text_record(
    stamp_text: str,
    level_name: str,
    logger: str,
    message: str,
    *,
    fields: dict[str, Any],
    format_name: str,
) -> Record:
    """A text line's record from the parts its pattern found: the level and time read as every
    format reads them, and a time that does not parse said so (`missing`), not replaced."""
    level, verbosity = parse_level(level_name)
    stamp = parse_time(stamp_text)
    return Record(
        message=message,
        level=level,
        verbosity=verbosity,
        time=stamp,
        logger=logger,
        fields=fields,
        format=format_name,
        missing=NO_TIME if stamp is None else (),
    )


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
        return ("debug", -raw) if raw < 0 else UNKNOWN
    known = LEVEL_NAMES.get(raw) if type(raw) is str else None  # already lower case: most lines
    if known is not None:
        return known
    if raw is None or raw == "":
        return ("info", 0)
    text = str(raw)
    known = LEVEL_NAMES.get(text.lower())
    if known is not None:
        return known
    if match := ZAP_VLEVEL.fullmatch(text):
        verbosity = -int(match.group(1))
        return ("debug", verbosity) if verbosity > 0 else ("info", 0)
    # slog's offset levels such as "INFO+2" or "WARN-4".
    base = text.lower().split("+", 1)[0].split("-", 1)[0]
    return LEVEL_NAMES.get(base, UNKNOWN)


def parse_time(raw: Any) -> float | None:
    """RFC 3339 text, or epoch seconds or milliseconds (number or text), to epoch seconds.

    A time without an offset is UTC (never the host's zone); anything outside the years 1-9999,
    infinite or NaN is no time at all, since Event timestamps must be renderable.
    """
    value = parse_time_unchecked(raw)
    return value if value is not None and EARLIEST <= value <= LATEST else None


def parse_time_unchecked(raw: Any) -> float | None:
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
EARLIEST = datetime(1, 1, 1, tzinfo=UTC).timestamp()
LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()


def as_int(raw: Any) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return 0
