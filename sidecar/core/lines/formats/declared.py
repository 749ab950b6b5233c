"""Line formats declared in the rules file, as the decoder runs them.

The rules file says what a format is (`sidecar.core.rules.formats` validates and compiles it);
this module reads a line with it. Kept apart from the rules package so that the decoder needs
nothing above it: a declared format comes here as plain callables (its pattern's search, its
paths' look-ups, its time and level readers).

A declared format either reads a line (a `Record` whose `format` is its name) or says why it did
not, in words `explain` prints: its pattern did not match, the line is not JSON, or the JSON has
none of the keys it names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from sidecar.core.lines.records import Record, text_of

#: A value found at a path of a JSON line, or `ABSENT`.
Getter = Callable[[dict[str, Any]], Any]
#: The roles a format's named groups or paths fill; every other group is a field.
ROLES: Final = ("time", "level", "logger", "message")


class _Absent:
    __slots__ = ()

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Final = _Absent()


@dataclass(frozen=True, slots=True)
class DeclaredFormat:
    """One format of the rules file's `formats.declared`, compiled."""

    name: str
    #: A text format: the named groups of its pattern in a line (those that took part), or
    #: None when the pattern does not match. None for a JSON format.
    pattern: Callable[[str], dict[str, str] | None] | None
    #: A JSON format: where each role is, by role (only the roles it names).
    paths: dict[str, Getter]
    #: A JSON format: top-level keys its paths name whole, left out of the fields.
    lifted: frozenset[str]
    #: What each role's path is, as written (for `explain`).
    wrote: dict[str, str]
    #: Its time's reading (a layout, an epoch unit, or the built-in one): seconds or None.
    read_time: Callable[[Any], float | None]
    #: Its level's reading (its level map, then the built-in names): (level, verbosity).
    read_level: Callable[[Any], tuple[str, int]]


@dataclass(frozen=True, slots=True)
class Formats:
    """The rules file's formats: the declared ones, tried first in order, and whether the
    built-in ones are tried after them."""

    declared: tuple[DeclaredFormat, ...] = ()
    builtin: bool = True

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(fmt.name for fmt in self.declared)


#: No declared format, the built-in ones on: what a rules file without `formats:` means.
BUILTIN_ONLY: Final = Formats()


def read(fmt: DeclaredFormat, text: str, obj: dict[str, Any] | None) -> Record | str:
    """The line read with `fmt`, or why it is not in that format. `obj` is the line decoded
    as a JSON object (None when it is not one); `text` the line as text."""
    if fmt.pattern is not None:
        groups = fmt.pattern(text)
        if groups is None:
            return "pattern did not match"
        raw_time = groups.pop("time", None)
        raw_level = groups.pop("level", None)
        message: Any = groups.pop("message", None)
        logger: Any = groups.pop("logger", None)
        fields: dict[str, Any] = dict(groups)
    else:
        if obj is None:
            return "not a JSON object"
        found: dict[str, Any] = {}
        for role, getter in fmt.paths.items():
            value = getter(obj)
            if value is ABSENT:
                # Every key it names, or the format would take lines of other JSON loggers
                # that happen to share one key (`msg`) with it.
                return f"no {role} at {fmt.wrote[role]}"
            found[role] = value
        raw_time = found.get("time")
        raw_level = found.get("level")
        message = found.get("message")
        logger = found.get("logger")
        fields = {key: value for key, value in obj.items() if key not in fmt.lifted}
    stamp = fmt.read_time(raw_time) if raw_time is not None else None
    level_missing = raw_level is None or raw_level == ""
    level, verbosity = ("info", 0) if level_missing else fmt.read_level(raw_level)
    record = Record(
        message="" if message is None else text_of(message),
        level=level,
        verbosity=verbosity,
        time=stamp,
        logger="" if logger is None else text_of(logger),
        fields=fields,
        format=fmt.name,
    )
    missing = tuple(
        name
        for name, absent in (
            ("time", stamp is None),
            ("level", level_missing),
            ("message", message is None),
        )
        if absent
    )
    if missing:
        record.missing = missing
    return record
