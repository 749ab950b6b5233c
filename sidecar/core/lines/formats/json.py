"""JSON lines: every JSON logger's object, its well-known keys lifted into the record.

controller-runtime zap, klog JSON, logrus JSON and Go slog JSON by the usual keys (`msg`,
`level`, `ts`, ...); then, for lines lacking one of them, the JSON encoders of other languages,
each told apart by keys it always writes: tracing-subscriber (Rust, kube-rs),
logstash-logback-encoder (Java, the Java Operator SDK), python-json-logger and kopf.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from sidecar.core.lines.formats.common import (
    EARLIEST,
    LATEST,
    LEVEL_NAMES,
    MISSING,
    as_int,
    parse_level,
    parse_time_unchecked,
)
from sidecar.core.lines.records import Record, text_of

_TIME_KEYS: Final = ("ts", "time", "timestamp", "@timestamp")
_LEVEL_KEYS: Final = ("level", "lvl", "severity")
_MESSAGE_KEYS: Final = ("msg", "message")
#: Keys lifted out of a line's fields into the record's time, level, message and logger; a rule
#: must match them through `message:`, `level:` and `logger:`, never `fields:`.
LIFTED_KEYS: Final = frozenset((*_TIME_KEYS, *_LEVEL_KEYS, *_MESSAGE_KEYS, "logger"))


def json_object(line: bytes) -> dict[str, Any] | None:
    """The line as a JSON object, or None. orjson refuses invalid UTF-8 outright; a replaced copy
    may still be a valid object."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        try:
            obj = orjson.loads(line.decode("utf-8", "replace"))
        except orjson.JSONDecodeError:
            return None
    return obj if type(obj) is dict else None


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
        known = LEVEL_NAMES.get(raw_level) if type(raw_level) is str else None
        if known is None:
            known = parse_level(raw_level)
            level_missing = raw_level == ""
        level, verbosity = known
    elif "v" in obj:
        # klog JSON has no level, only the V-level of info lines.
        verbosity = max(0, as_int(obj.pop("v")))
        level = "info" if verbosity <= 0 else "debug"
    elif "err" in obj:
        level, verbosity = "error", 0  # klog JSON's error lines: `err` and no `v`
    else:
        level, verbosity, level_missing = "info", 0, True
    stamp = parse_time_unchecked(raw_time) if raw_time is not None else None
    out_of_range = stamp is not None and not EARLIEST <= stamp <= LATEST
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
        record.missing = MISSING[(stamp is None, level_missing, message is None)]
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
            if raw_time is None or parse_time_unchecked(raw_time) is None:
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
