"""A rule's `match` compiled: one closure per condition, and its named groups' captures.

The closures run on every candidate line, so what can be done once is done here: regular
expressions compiled (RE2), comparison values turned into the text they are compared as. Each
condition is also a `Check` naming what the user wrote, so `explain` runs the very tests `run`
does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sidecar.core.lines.records import Record, text_of
from sidecar.core.rules.conditions import Condition, Match, Scalar
from sidecar.core.rules.paths import Path, lookup_path
from sidecar.core.rules.paths import field_path as path_of
from sidecar.core.rules.regex import compile_captures, compile_search
from sidecar.core.rules.templates import MissingField

Test = Callable[[Any], bool]


@dataclass(frozen=True, slots=True)
class Check:
    """One condition of a rule's `match`: the closure `matches` runs, and for `explain` what the
    user wrote (`name`, `wants`) and the value the line held there (`seen`)."""

    name: str
    wants: str
    test: Callable[[Record], bool]
    seen: Callable[[Record], Any]


ABSENT = object()


def compile_test(condition: Condition) -> Test:
    if condition.not_ is not None:
        inner = compile_test(condition.not_)
        return lambda value: not inner(value)
    if condition.regex is not None:
        search = compile_search(condition.regex)
        return lambda value: value is not ABSENT and search(text_of(value))
    if condition.any is not None:
        texts = frozenset(choice for choice in condition.any if type(choice) is str)
        others = tuple(_equals(choice) for choice in condition.any if type(choice) is not str)
        if not others:
            return lambda value: value is not ABSENT and text_of(value) in texts
        return lambda value: (
            value is not ABSENT and (text_of(value) in texts or any(test(value) for test in others))
        )
    if condition.exists is not None:
        wanted = condition.exists
        return lambda value: (value is not ABSENT) is wanted
    if type(condition.equals) is str:
        expected = condition.equals  # the common case, inlined: this runs on every candidate
        return lambda value: value is not ABSENT and text_of(value) == expected
    equals = _equals(condition.equals)
    return lambda value: value is not ABSENT and equals(value)


#: How a boolean is written by the encoders controllers use: JSON and Go's strconv.FormatBool
#: (`true`), Python and .NET (`True`), and the occasional shout.
_BOOLEAN_SPELLINGS = {
    True: frozenset(("true", "True", "TRUE")),
    False: frozenset(("false", "False", "FALSE")),
}


def _equals(expected: Scalar) -> Test:
    """Equality the way the rule's author means it, whatever the line's format.

    - a string compares with the value's text (JSON spelling for non-strings): exact;
    - a boolean (YAML `true`, `True`) matches JSON `true` and the text `true`/`True`/`TRUE`;
    - a number (YAML `1`, `1.0`) matches any number or numeric text of equal value;
    - null (YAML `null`, `~`, nothing) matches JSON null and the text `null`.
    """
    if type(expected) is bool:
        spellings = _BOOLEAN_SPELLINGS[expected]
        return lambda value: value is expected or (type(value) is str and value in spellings)
    if type(expected) in (int, float):
        number = float(expected)  # type: ignore[arg-type]
        return lambda value: _number_of(value) == number
    text = text_of(expected)
    return lambda value: text_of(value) == text


def _number_of(value: Any) -> float | None:
    if type(value) in (int, float):
        return float(value)
    if type(value) is str:
        try:
            return float(value)
        except ValueError:
            return None
    return None


def compile_checks(match: Match) -> tuple[Check, ...]:
    """One closure per condition; cheapest and most selective first (message, then level)."""
    checks: list[Check] = []
    if match.message is not None:
        wants, seen_message = describe(match.message), attribute("message")
        if match.message.equals is not None and isinstance(match.message.equals, str):
            expected = match.message.equals
            checks.append(
                Check("message", wants, lambda record: record.message == expected, seen_message)
            )
        else:
            test = compile_test(match.message)
            checks.append(
                Check("message", wants, lambda record: test(record.message), seen_message)
            )
    if match.level is not None:
        levels = frozenset(match.level)
        checks.append(
            Check(
                "level",
                "one of " + ", ".join(match.level),
                lambda record: record.level in levels,
                attribute("level"),
            )
        )
    if match.logger is not None:
        logger_test = compile_test(match.logger)
        checks.append(
            Check(
                "logger",
                describe(match.logger),
                lambda record: logger_test(record.logger),
                attribute("logger"),
            )
        )
    for name, condition in match.fields.items():
        path = path_of(name)
        checks.append(
            Check(
                f"fields.{name}",
                describe(condition),
                _field_check(path, compile_test(condition)),
                field_value(path),
            )
        )
    return tuple(checks)


def describe(condition: Condition) -> str:
    """A condition as the rules file says it, for people: `= "Ready"`, `regex "^x"`, ..."""
    if condition.not_ is not None:
        return f"not ({describe(condition.not_)})"
    if condition.regex is not None:
        return f"regex {text_of(condition.regex)}"
    if condition.any is not None:
        return "any of " + ", ".join(text_of(choice) for choice in condition.any)
    if condition.exists is not None:
        return "present" if condition.exists else "absent"
    return f"= {text_of(condition.equals)}"


def attribute(name: str) -> Callable[[Record], Any]:
    return lambda record: getattr(record, name)


def field_value(path: Path) -> Callable[[Record], Any]:
    """The value at `path`, or `ABSENT`; for `explain` only (matching uses `_field_check`)."""

    def value(record: Record) -> Any:
        try:
            return lookup_path(record.fields, path)
        except MissingField:
            return ABSENT

    return value


def is_absent(value: Any) -> bool:
    """Whether a `Check.seen` found nothing (the field is not in the line)."""
    return value is ABSENT


def combine(named: tuple[Check, ...]) -> Callable[[Record], bool]:
    """The rule's match: every check holds (one closure call for the common single check)."""
    checks = tuple(check.test for check in named)
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:  # a message and a level, say: no generator per line
        first, second = checks
        return lambda record: first(record) and second(record)
    return lambda record: all(check(record) for check in checks)


def _field_check(path: Path, test: Test) -> Callable[[Record], bool]:
    def check(record: Record) -> bool:
        try:
            value = lookup_path(record.fields, path)
        except MissingField:
            value = ABSENT
        return test(value)

    return check


def compile_captures_of(match: Match) -> Callable[[Record], dict[str, str]] | None:
    """What the named groups of the match's `regex:` conditions capture on a matched line.

    Run once per matched line (a second search of the values the match searched), never on the
    lines that fail the match. A group that did not take part in the match is left out, so a
    template naming it misses as for an absent field.
    """
    extractors: list[tuple[Callable[[Record], Any], Callable[[str], dict[str, str]]]] = []
    conditions: list[tuple[Callable[[Record], Any], Condition | None]] = [
        (attribute("message"), match.message),
        (attribute("logger"), match.logger),
    ]
    conditions.extend(
        (field_value(path_of(name)), condition) for name, condition in match.fields.items()
    )
    for value_of, condition in conditions:
        if condition is not None and condition.regex is not None:
            captures = compile_captures(condition.regex)
            if captures is not None:
                extractors.append((value_of, captures))
    if not extractors:
        return None

    def capture(record: Record) -> dict[str, str]:
        found: dict[str, str] = {}
        for value_of, captures in extractors:
            value = value_of(record)
            if value is not ABSENT:
                found.update(captures(text_of(value)))
        return found

    return capture
