"""The rules file's `formats:`: line formats declared for logs the built-in decoders do not read.

```yaml
formats:
  builtin: true                # default: the built-in formats are tried after the declared ones;
                               # false: only the declared ones (a line none reads is unrecognised)
  declared:                    # tried in order, before the built-in ones
    - name: billing-text       # the record's `format`, the metric's label
      regex: '^(?P<time>\\S+ \\S+) (?P<level>[A-Z]+) \\[(?P<logger>[^\\]]+)\\] (?P<message>.*)$'
      time: {layout: "%Y-%m-%d %H:%M:%S.%f"}     # or {epoch: s|ms|us|ns}
      levels: {E: error, W: warning, I: info, D: debug}
    - name: serilog-json
      json: {time: "@t", level: "@l", message: "@mt", logger: SourceContext}   # paths
      levels: {Information: info, Warning: warning, Error: error, Fatal: fatal}
```

A text format is an RE2 pattern (searched as a rule's `regex:` is; anchor it with `^...$`) whose
named groups `time`, `level`, `logger` and `message` fill the record and whose other named
groups are fields. A JSON format names, by path (`sidecar.core.rules.paths`), where the time,
level, message and logger of a JSON line are; every top-level key is a field but those its paths
name whole. A JSON format reads only a line that has every path it names (so that it does not
take the lines of another JSON logger sharing a key with it, such as `msg`). Times: a `layout`
in `strptime` directives (without an offset, UTC), an `epoch` unit, or else RFC 3339 or epoch
seconds or milliseconds as the built-in decoders read them. Levels: the `levels` map (a value
as written, numbers included: `{50: error}`), then the built-in spellings.

Mistakes stop loading with the file, the line and the format's name, as the rules' do.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sidecar.core.lines.decode import BUILTIN_FORMATS, parse_level, parse_time
from sidecar.core.lines.formats.declared import ABSENT, ROLES, DeclaredFormat, Formats, Getter
from sidecar.core.lines.records import text_of
from sidecar.core.rules.paths import MissingField, PathError, field_path, lookup_path
from sidecar.core.rules.regex import RegexError, compile_regex, compile_search, group_names

_NAME = re.compile(r"[a-z0-9]([-a-z0-9_.]*[a-z0-9])?")
_Level = Literal["debug", "info", "warning", "error", "fatal"]
#: The most formats a rules file may declare.
MAX_DECLARED = 64
#: Seconds per epoch unit.
_UNITS = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}
#: The times an Event can carry (years 1-9999).
_EARLIEST = datetime(1, 1, 1, tzinfo=UTC).timestamp()
_LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()
#: A time every sensible layout can write and read back: what `layout` is checked with.
_PROBE = datetime(2024, 1, 11, 14, 21, 3, 806000, tzinfo=UTC)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeSpec(_Strict):
    """How a format's time is written: a `strptime` layout, or an epoch unit."""

    layout: str | None = Field(default=None, min_length=1)
    epoch: Literal["s", "ms", "us", "ns"] | None = None

    @model_validator(mode="after")
    def _one(self) -> TimeSpec:
        if (self.layout is None) == (self.epoch is None):
            raise ValueError("give the time's `layout` (strptime directives) or its `epoch` unit")
        if self.layout is not None:
            if "%" not in self.layout:
                raise ValueError(f"layout {self.layout!r} has no strptime directive (%Y, %H, ...)")
            try:
                written = _PROBE.strftime(self.layout)
                datetime.strptime(written, self.layout)
            except ValueError as error:
                raise ValueError(
                    f"layout {self.layout!r} cannot read back the time it writes ({error})"
                ) from None
        return self


class JsonPaths(_Strict):
    """Where the roles are in a JSON line, by path."""

    time: str | None = None
    level: str | None = None
    message: str | None = None
    logger: str | None = None

    @field_validator("time", "level", "message", "logger")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                field_path(value)
            except PathError as error:
                raise ValueError(str(error)) from None
        return value

    @model_validator(mode="after")
    def _some(self) -> JsonPaths:
        if not any((self.time, self.level, self.message, self.logger)):
            raise ValueError("name the path of at least one of time, level, message, logger")
        return self


class DeclaredFormatSpec(_Strict):
    name: str
    regex: str | None = None
    json_: JsonPaths | None = Field(default=None, alias="json")
    time: TimeSpec | None = None
    levels: dict[str, _Level] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a format name: lower case letters, digits, '-', '_' and '.'"
            )
        if value in BUILTIN_FORMATS:
            raise ValueError(f"{value!r} is a built-in format's name; choose another")
        return value

    @field_validator("levels", mode="before")
    @classmethod
    def _level_keys_as_text(cls, value: Any) -> Any:
        # YAML reads `50: error` with an integer key; a level is compared as its text.
        if isinstance(value, dict):
            return {
                text_of(key) if not isinstance(key, str) else key: v for key, v in value.items()
            }
        return value

    @field_validator("regex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                compile_search(value)
            except RegexError as error:
                raise ValueError(f"invalid RE2 pattern: {error}") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DeclaredFormatSpec:
        where = f"format {self.name}"
        if (self.regex is None) == (self.json_ is None):
            raise ValueError(f"{where}: give either `regex` (a text format) or `json` (paths)")
        if self.regex is not None:
            roles = set(group_names(self.regex)) & set(ROLES)
            if not roles:
                raise ValueError(
                    f"{where}: the pattern has no named group time, level, logger or message "
                    "((?P<message>...)); nothing would be read from a line"
                )
        else:
            assert self.json_ is not None
            roles = {role for role in ROLES if getattr(self.json_, role) is not None}
        if self.time is not None and "time" not in roles:
            raise ValueError(f"{where}: `time` says how the time is written, but none is read")
        if self.levels is not None and "level" not in roles:
            raise ValueError(f"{where}: `levels` maps levels, but no level is read")
        return self


class FormatsSpec(_Strict):
    """The rules file's `formats:`."""

    builtin: bool = True
    #: Bounded: each is tried in turn on every line the pre-filter passes.
    declared: tuple[DeclaredFormatSpec, ...] = Field(default=(), max_length=MAX_DECLARED)

    @model_validator(mode="after")
    def _sensible(self) -> FormatsSpec:
        names = [spec.name for spec in self.declared]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"format {name} is declared twice; names must be unique")
        if not self.builtin and not self.declared:
            raise ValueError("`builtin: false` with no declared format would read no line")
        return self


def name_the_format(location: tuple[Any, ...], data: Any, message: str) -> str:
    """A validation error's message, naming the declared format it is in (as rules' errors
    name their rule): `format billing: ...`."""
    if len(location) < 3 or location[:2] != ("formats", "declared"):
        return message
    index = location[2]
    try:
        name = data["formats"]["declared"][index]["name"]
    except (LookupError, TypeError):
        name = None
    named = f"format {name}" if isinstance(name, str) else f"format #{index + 1}"
    where = f"formats.declared.{index}"
    if message.startswith(where):  # the format's name says where better than its index
        message = message[len(where) :].lstrip(".: ")
    return message if message.startswith(named) else f"{named}: {message}"


def format_warnings(spec: FormatsSpec | None) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """`check`'s warnings about declared formats that are valid but probably not meant, each
    with where it is in the file (`formats`, `declared`, index, key)."""
    if spec is None:
        return
    for index, declared in enumerate(spec.declared):
        where: tuple[str | int, ...] = ("formats", "declared", index)
        named = f"format {declared.name}"
        if declared.regex is not None:
            if not declared.regex.startswith("^"):
                yield (
                    (*where, "regex"),
                    f"{named}: the pattern is searched anywhere in a line: without `^` it may "
                    "read lines of other formats that merely hold such text; anchor it",
                )
            if "message" not in group_names(declared.regex):
                yield (
                    (*where, "regex"),
                    f"{named}: no `message` group: its lines have an empty message (counted as "
                    "incomplete, `not in the line: message` in explain)",
                )
        elif declared.json_ is not None and declared.json_.message is None:
            yield (
                (*where, "json"),
                f"{named}: no `message` path: its lines have an empty message (counted as "
                "incomplete, `not in the line: message` in explain)",
            )


def compile_formats(spec: FormatsSpec | None) -> Formats:
    """The decoder's view of the rules file's formats (no `formats:`: the built-in ones)."""
    if spec is None:
        return Formats()
    return Formats(tuple(_compile(declared) for declared in spec.declared), spec.builtin)


def _compile(spec: DeclaredFormatSpec) -> DeclaredFormat:
    read_time = _time_reader(spec.time)
    read_level = _level_reader(spec.levels)
    if spec.regex is not None:
        return DeclaredFormat(
            spec.name, _groups(spec.regex), {}, frozenset(), {}, read_time, read_level
        )
    assert spec.json_ is not None
    paths: dict[str, Getter] = {}
    wrote: dict[str, str] = {}
    lifted: set[str] = set()
    for role in ROLES:
        written = getattr(spec.json_, role)
        if written is None:
            continue
        path = field_path(written)
        paths[role] = _getter(path)
        wrote[role] = written
        if len(path) == 1:
            lifted.add(str(path[0]))
        else:
            lifted.add(written)  # a dotted key taken whole (logback MDC keys) is lifted too
    return DeclaredFormat(spec.name, None, paths, frozenset(lifted), wrote, read_time, read_level)


def _groups(pattern: str) -> Callable[[str], dict[str, str] | None]:
    """The pattern's named groups in a line; RE2, as the rules' regexes, so linear in the line
    (`sidecar.core.rules.regex`), and as bounded in memory."""
    search = compile_regex(pattern).search

    def groups(text: str) -> dict[str, str] | None:
        found = search(text)
        if found is None:
            return None
        return {name: value for name, value in found.groupdict().items() if value is not None}

    return groups


def _getter(path: tuple[Any, ...]) -> Getter:
    def get(obj: dict[str, Any]) -> Any:
        try:
            return lookup_path(obj, path)
        except MissingField:
            return ABSENT

    return get


def _time_reader(spec: TimeSpec | None) -> Callable[[Any], float | None]:
    if spec is None:
        return parse_time
    if spec.epoch is not None:
        per_second = _UNITS[spec.epoch]

        def epoch(raw: Any) -> float | None:
            try:
                value = float(raw) / per_second
            except (TypeError, ValueError):
                return None
            return value if _EARLIEST <= value <= _LATEST else None

        return epoch
    layout = spec.layout
    assert layout is not None

    def by_layout(raw: Any) -> float | None:
        try:
            parsed = datetime.strptime(text_of(raw), layout)
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()

    return by_layout


def _level_reader(levels: Mapping[str, str] | None) -> Callable[[Any], tuple[str, int]]:
    if not levels:
        return parse_level
    mapped = {written: (level, 1 if level == "debug" else 0) for written, level in levels.items()}

    def read(raw: Any) -> tuple[str, int]:
        found = mapped.get(text_of(raw))
        return found if found is not None else parse_level(raw)

    return read
