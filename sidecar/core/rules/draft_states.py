"""What behaves like per-object state in a drafted rule's lines (`suggest`): a field, or a word
of the message, with few values that change over time for one object; and which lines of the
log show it best, for a test."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sidecar.core.lines.records import Record
from sidecar.core.rules.draft_objects import PLAIN_NAME, Naming

#: Distinct values a state may take: a real state machine has a handful; more is data.
MAX_STATES = 12


#: Lines of the log one test of the tests file takes (they come from one object).
MAX_TEST_LINES = 8


#: Values that look like trouble when an object enters them (matched case-insensitively).
_FAILURE = re.compile(
    r"fail|error|err\b|crash|backoff|degrad|unhealthy|unavailable|notready|not.ready|lost|"
    r"invalid|reject|denied|forbidden|timeout|timedout|dead|broken|stuck|atlimit|pressure|"
    r"unknown|evict|terminat|abort|conflict",
    re.IGNORECASE,
)


#: Fields whose `false` is trouble (`ready: false`, `healthy: false`).
_HEALTH = re.compile(r"ready|healthy|health|available|ok|success|succeeded|live|alive", re.I)


#: Fields that never hold state: identities, bookkeeping and the object's own names.
_NOT_STATE = frozenset(
    (
        "name",
        "namespace",
        "controller",
        "controllerGroup",
        "controllerKind",
        "reconcileID",
        "caller",
        "stacktrace",
        "stack",
        "error",
        "err",
        "uid",
        "version",
        "generation",
        "resourceVersion",
        "thread_name",
        "level_value",
        "@version",
        "line",
        "lineno",
        "file",
        "filename",
        "funcName",
        "function",
        "target",
        "span",
        "spans",
        "threadName",
        "process",
        "pid",
        "id",
    )
)


WORD = re.compile(r"[A-Za-z][A-Za-z_-]*")


_STATE_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,40}")


@dataclass(slots=True)
class Line:
    raw: str
    record: Record
    object: tuple[str, str, str]
    tokens: list[str]
    #: Its place in the log, to put merged groups' lines back in order.
    seq: int


@dataclass(slots=True)
class Group:
    naming: Naming
    #: Per token: the literal, or None where the token varies.
    shape: tuple[str | None, ...]
    lines: list[Line] = field(default_factory=list)
    #: The position of a state word captured from the message.
    state_at: int | None = None
    state_name: str = ""


def merge_state_words(groups: list[Group]) -> list[Group]:
    """Merge groups whose messages differ in one word only, when that word behaves like a
    state of the object (few values, changing for one object): `Phase changed to Ready` and
    `Phase changed to Failed` become one group capturing the word."""
    taken: set[int] = set()
    out: list[Group] = []
    for length in sorted({len(group.shape) for group in groups}):
        same = [(n, g) for n, g in enumerate(groups) if len(g.shape) == length]
        for position in reversed(range(length)):
            families: dict[tuple[Naming, tuple[str | None, ...]], list[tuple[int, Group]]] = {}
            for number, group in same:
                word = group.shape[position]
                if number in taken or word is None or not _STATE_WORD.fullmatch(word):
                    continue
                rest = (*group.shape[:position], "*", *group.shape[position + 1 :])
                families.setdefault((group.naming, rest), []).append((number, group))
            for members in families.values():
                if not 2 <= len(members) <= MAX_STATES:
                    continue
                lines = sorted(
                    (line for _, group in members for line in group.lines),
                    key=lambda line: line.seq,
                )
                if not count_changes([(line.object, line.tokens[position]) for line in lines]):
                    continue
                first = members[0][1]
                shape = (*first.shape[:position], None, *first.shape[position + 1 :])
                merged = Group(first.naming, shape, lines, position)
                merged.state_name = _state_name(shape, position)
                taken.update(number for number, _ in members)
                out.append(merged)
    out.extend(group for number, group in enumerate(groups) if number not in taken)
    return out


def _state_name(shape: tuple[str | None, ...], position: int) -> str:
    for word in shape[:position]:
        if word is not None and WORD.fullmatch(word) and len(word) > 2:
            name = re.sub(r"[^a-z0-9_]", "_", word.lower())
            if name not in ("the", "changed", "now", "from", "into", "was", "has", "is"):
                return name
    return "state"


def state_reader(
    group: Group, state: tuple[str, str, Counter[str], str] | None
) -> Callable[[Line], Any] | None:
    """What a line's (key, state) is, as the drafted transition renders them."""
    if state is None:
        return None
    position = group.state_at
    if position is not None:
        return lambda line: ("", line.tokens[position])
    field_name, key = state[1], state[3][1:-1]
    return lambda line: (
        line.record.fields.get(key) if key else "",
        state_text(line.record.fields.get(field_name)),
    )


def state_of(group: Group) -> tuple[str, str, Counter[str], str] | None:
    """The state of the group's objects: (template, what it is called, values seen, the
    transition key template or "")."""
    lines = group.lines
    if group.state_at is not None:
        position = group.state_at
        values = Counter(line.tokens[position] for line in lines)
        return "{" + group.state_name + "}", group.state_name, values, ""
    if len(lines) < 3:
        return None
    columns: dict[str, list[str]] = {}
    for key in lines[0].record.fields:
        if key in _NOT_STATE or not PLAIN_NAME.fullmatch(key):
            continue
        texts = [state_text(line.record.fields.get(key)) for line in lines]
        column = [value for value in texts if value is not None]
        if len(column) == len(texts):
            values = Counter(column)
            if 2 <= len(values) <= MAX_STATES and len(values) * 2 <= len(column):
                columns[key] = column
    best: tuple[int, str, str] | None = None
    for key, column in columns.items():
        # A value that changes on most lines of an object is a dimension (cpu, memory: one
        # line each), not a state; keyed by such a dimension, another value may be a state.
        for by in ("", *(other for other in columns if other != key)):
            keys = [
                (line.object, columns[by][number] if by else "")
                for number, line in enumerate(lines)
            ]
            changes = count_changes(list(zip(keys, column, strict=True)))
            chances = len(lines) - len(set(keys))
            if changes and changes * 5 <= chances * 4:
                if best is None or changes > best[0]:
                    best = (changes, key, by)
                break  # the simplest key that makes it a state
    if best is None:
        return None
    _, key, by = best
    return "{" + key + "}", key, Counter(columns[key]), "{" + by + "}" if by else ""


def state_text(value: Any) -> str | None:
    if type(value) is str and value and len(value) <= 40 and "\n" not in value:
        return value
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) is int and abs(value) < 1000:
        return str(value)
    return None


def count_changes(seen: list[tuple[Any, str]]) -> int:
    """How often a value differs from the one before it for the same object (and key)."""
    last: dict[Any, str] = {}
    changes = 0
    for target, value in seen:
        before = last.get(target)
        if before is not None and before != value:
            changes += 1
        last[target] = value
    return changes


def failure_like(value: str, condition: str) -> bool:
    if value == "false":
        return _HEALTH.search(condition) is not None
    return _FAILURE.search(value) is not None


def sample(lines: list[Line], state: Callable[[Line], Any] | None = None) -> tuple[str, ...]:
    """Lines of one object for a test, at most `MAX_TEST_LINES`: with a state, those around
    the first change of the object that changes most; else the object with the most lines."""
    if state is not None:
        changes: Counter[tuple[str, str, str]] = Counter()
        last: dict[Any, Any] = {}
        first_change: dict[tuple[str, str, str], int] = {}
        for line in lines:
            key, value = state(line)
            before = last.get((line.object, key))
            if before is not None and before != value:
                changes[line.object] += 1
                first_change.setdefault(line.object, line.seq)
            last[(line.object, key)] = value
        if changes:
            target = changes.most_common(1)[0][0]
            mine = [line for line in lines if line.object == target]
            at = next(n for n, line in enumerate(mine) if line.seq == first_change[target])
            start = max(0, at - MAX_TEST_LINES // 2)
            return tuple(line.raw for line in mine[start : start + MAX_TEST_LINES])
    counts = Counter(line.object for line in lines)
    target = counts.most_common(1)[0][0]
    return tuple(line.raw for line in lines if line.object == target)[:MAX_TEST_LINES]
