"""Field paths: how a rules file names a value inside a decoded line, in every place it does.

One syntax for `match.fields` keys, templates (`{...}`), `object.ref` and through templates
`object` and `transition`:

- `name`, `a.b.c`: keys of nested objects. A path of names only is first tried as one key
  (`a.b.c`), since logfmt, klog and logback MDC keys contain dots; this is what such paths have
  always meant. In `match.fields` and `object.ref`, a name without brackets or quotes may hold
  any character (`app.kubernetes.io/name`), as it always could.
- `a["b.c"]` or `a['b.c']`: the key `b.c` of `a`, taken whole (JSON string escapes in `"..."`).
- `a[0]`, `a[-1]`: an element of a list by position (from the end when negative).
- `a[type=Ready]`, `a[type="Ready"]`: the first element of a list that is an object whose `type`
  is `Ready` (compared as text, as `match` compares values).

A path with brackets is first tried as one key too, as written (`items[0]`), so a name that
held brackets before they meant anything keeps its meaning.

Only data is followed: dictionary keys of the decoded line and elements of its lists, never
Python attributes or indexing of other values (`{s[0]}` of a string is absent, not its first
character).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sidecar.core.lines.records import text_of


class MissingField(LookupError):
    """A template named a field the log line does not carry."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


class PathError(ValueError):
    """Text that is not a field path; the message says what is allowed."""


class Key(str):
    """A key written quoted (`["b.c"]`): taken whole, never joined with the names before it."""

    __slots__ = ()

    def __repr__(self) -> str:
        # Distinct from a bare name's: tracker meanings are digests of the templates' reprs.
        return f"Key({str.__repr__(self)})"


@dataclass(frozen=True, slots=True)
class Index:
    """`[N]`: the list element at position N (from the end when negative)."""

    position: int


@dataclass(frozen=True, slots=True)
class Select:
    """`[key=value]`: the first list element that is an object whose `key` is `value`."""

    key: str
    value: str


#: A plain `str` is a name written bare (`a.b`), a `Key` one written quoted.
Step = str | Index | Select
Path = tuple[Step, ...]

_NAME_FIRST = r"[A-Za-z_@][\w\-@]*"
_NAME = r"[\w\-@]+"
_STRING = r"\"(?:[^\"\\]|\\.)*\"|'[^']*'"
_FIRST = re.compile(rf"({_NAME_FIRST})|\[({_STRING})\]")
_STEP = re.compile(
    rf"\.({_NAME})|\[(-?[0-9]+)\]|\[({_STRING})\]|\[({_NAME})=({_STRING}|[^\]\"']+)\]"
)
_UNQUOTED = re.compile(r"[^\]\"']+")
#: What a path may be, for error messages.
SYNTAX = (
    "names of letters, digits, '_', '-', '@' joined by '.'; [\"key\"] for a key with dots; "
    "[N] and [key=value] for list elements"
)


def _unquote(text: str) -> str:
    if text.startswith("'"):
        return text[1:-1]
    try:
        value = json.loads(text)
    except ValueError as error:
        raise PathError(f"invalid string {text}: {error}") from None
    assert type(value) is str
    return value


def parse_path(text: str) -> Path:
    """The steps of `text`; raise `PathError` if it is not a path (see the module's syntax)."""
    found = _FIRST.match(text)
    if found is None:
        raise PathError(f"{text!r} is not a field path ({SYNTAX})")
    name, quoted = found.groups()
    steps: list[Step] = [name if name is not None else Key(_unquote(quoted))]
    position = found.end()
    while position < len(text):
        found = _STEP.match(text, position)
        if found is None:
            raise PathError(
                f"{text!r} is not a field path: {text[position:]!r} is not a step ({SYNTAX})"
            )
        name, index, quoted, select_key, select_value = found.groups()
        if name is not None:
            steps.append(name)
        elif index is not None:
            steps.append(Index(int(index)))
        elif quoted is not None:
            steps.append(Key(_unquote(quoted)))
        else:
            value = select_value
            if value[0] in "\"'":
                value = _unquote(value)
            steps.append(Select(select_key, value))
        position = found.end()
    return tuple(steps)


#: What makes a name in `match.fields` or `object.ref` a path rather than dotted names.
_BRACKETED = re.compile(r"[\[\]\"']")


def field_path(name: str) -> Path:
    """A field named in `match.fields` or `object.ref`: without brackets or quotes, its names
    split at dots, whatever characters they hold (as always); else a path (`parse_path`)."""
    if _BRACKETED.search(name) is None:
        return tuple(name.split("."))
    return parse_path(name)


def format_path(path: Path) -> str:
    """The path as written (in its canonical spelling): `a.b`, `a["b.c"]`, `a[type=Ready]`."""
    # Cached by the steps' types too: `Key("b")` equals "b", but `a["b"]` is not `a.b`.
    return _format(path, tuple(type(step) for step in path))


@functools.lru_cache(maxsize=1024)
def _format(path: Path, _types: tuple[type, ...]) -> str:
    out: list[str] = []
    for number, step in enumerate(path):
        if type(step) is str:
            out.append(step if number == 0 else "." + step)
        elif isinstance(step, Key):
            out.append(f"[{json.dumps(str(step), ensure_ascii=False)}]")
        elif isinstance(step, Index):
            out.append(f"[{step.position}]")
        else:
            assert isinstance(step, Select)
            value = step.value
            if _UNQUOTED.fullmatch(value) is None:
                value = json.dumps(value, ensure_ascii=False)
            out.append(f"[{step.key}={value}]")
    return "".join(out)


def is_plain(path: Path) -> bool:
    """Whether the path is names only (`a.b.c`), the form paths had before brackets."""
    return all(type(step) is str for step in path)


def lookup_path(data: Mapping[str, Any], path: Path) -> Any:
    """The value at `path` in `data`; raise `MissingField` when absent.

    The names a path starts with (`a.b` of `a.b[0]`) are first tried as one key, since logfmt and
    klog keys may contain dots.
    """
    value: Any = data
    steps = path
    if len(path) > 1 and not is_plain(path):
        whole = format_path(path)
        if whole in data:
            return data[whole]
    if len(path) > 1 and type(path[0]) is str and type(path[1]) is str:
        plain = 2
        while plain < len(path) and type(path[plain]) is str:
            plain += 1
        joined = ".".join(path[:plain])  # type: ignore[arg-type]
        if joined in data:
            value, steps = data[joined], path[plain:]
    for step in steps:
        # Index and Select are never keys of a decoded object (its keys are strings).
        if type(value) is dict and step in value:
            value = value[step]
        elif type(value) is list and type(step) is Index:
            position = step.position
            if not -len(value) <= position < len(value):
                raise MissingField(format_path(path))
            value = value[position]
        elif type(value) is list and type(step) is Select:
            value = _select(value, step)
            if value is _NONE:
                raise MissingField(format_path(path))
        else:
            raise MissingField(format_path(path))
    return value


_NONE = object()


def _select(items: list[Any], step: Select) -> Any:
    key, wanted = step.key, step.value
    for item in items:
        if type(item) is dict and key in item and text_of(item[key]) == wanted:
            return item
    return _NONE
