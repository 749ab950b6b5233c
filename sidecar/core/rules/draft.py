"""A first rules file drafted from a log (`event-sidecar suggest`): pure analysis, text out.

Writing the first rules for an unknown controller's log is where users spend their time, so the
draft does what they would do by hand, from the log alone:

- find the lines that name an object, and how a rule names it (`object: auto`, a reference
  field, a field named after a kind, the `[namespace/name]` of kopf's text, `Kind(ns/name)` in
  the message, captured);
- group those lines by the shape of their message (the words that stay; numbers, quotes and the
  object's own name vary);
- in each group, look for a value that behaves like per-object state: a field, or a word of the
  message that differs between otherwise equal messages (then captured by a named group), with
  few values that change over time for one object. That becomes a `transition` rule whose
  `cases` make entering a failure-like state a Warning;
- the warning and error lines that repeat become Warning rules.

Every choice is written beside the rule as a comment (values seen, lines, objects, an example
line), because the draft is for a person to read and correct. The draft is valid by
construction (`tests/test_suggest.py` checks it with `check` and replays it on every example
log): names, reasons and regexes are derived, escaped and checked here.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from sidecar.core.lines.records import Record
from sidecar.core.rules.draft_objects import REF_IN_TEXT, Naming, name_object, object_text, quote
from sidecar.core.rules.draft_states import (
    WORD,
    Group,
    Line,
    failure_like,
    merge_state_words,
    sample,
    state_of,
    state_reader,
)
from sidecar.core.rules.regex import RegexError, compile_search
from sidecar.core.rules.templates import camel

#: Rules a draft proposes at most: the most telling come first.
MAX_RULES = 40


_VOLATILE = re.compile(r"[0-9\"'`=<>{}\[\]]|^https?:|.{41,}")


_REGEX_SPECIAL = frozenset("\\.+*?()|[]{}^$")


@dataclass(frozen=True, slots=True)
class DraftRule:
    """A drafted rule: its name, its YAML text (comments included) and the log lines (as they
    were) of the object that shows it best, for a test."""

    name: str
    text: str
    sample: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Draft:
    component: str
    rules: tuple[DraftRule, ...]
    #: Lines read, decoded, and naming an object: for the header.
    lines: int
    decoded: int
    naming: int

    @property
    def text(self) -> str:
        """The draft rules file."""
        head = [
            f"# A first draft of rules, from {self.lines:,} lines ({self.decoded:,} decoded, "
            f"{self.naming:,} naming an object).",
            "# Read every rule: the names, reasons, kinds and cases are guesses from the log.",
            "# Check it with `event-sidecar check`, try it with `event-sidecar replay --rules`.",
            f"component: {quote(self.component)}",
            "rules:",
        ]
        return "\n".join(head) + "\n" + "\n".join(rule.text for rule in self.rules)


def draft_rules(
    lines: Iterable[tuple[str, Record]], component: str, *, read: int | None = None
) -> Draft | None:
    """A draft for the log's decoded lines (each with its text as it was in the log), of `read`
    lines in all; None when no line names an object (a rule needs one to address its Event)."""
    groups: dict[tuple[Naming, tuple[str | None, ...]], Group] = {}
    total = naming_count = 0
    for raw, record in lines:
        total += 1
        message = record.message
        if not message or "\n" in message or len(message) > 500:
            continue
        found = name_object(record)
        if found is None:
            continue
        naming, target = found
        naming_count += 1
        tokens = message.split(" ")
        shape = tuple(
            None if _varies(token, target, naming.in_message) else token for token in tokens
        )
        key = (naming, shape)
        group = groups.get(key)
        if group is None:
            group = groups[key] = Group(naming, shape)
        group.lines.append(Line(raw, record, target, tokens, total))
    if not groups:
        return None
    merged = merge_state_words(list(groups.values()))
    rules = _rules(merged)
    return Draft(component, tuple(rules), total if read is None else read, total, naming_count)


def _varies(token: str, target: tuple[str, str, str], in_message: bool) -> bool:
    if not token:
        return False
    _, namespace, name = target
    for named in (name, namespace):
        # A short name (`a`) is in many words by chance: only the whole word is the name.
        if named and (token == named or (len(named) >= 4 and named in token)):
            return True
    if in_message and REF_IN_TEXT.search(token):
        return True
    return _VOLATILE.search(token) is not None


def _rules(groups: list[Group]) -> list[DraftRule]:
    names: set[str] = set()
    ranked: list[tuple[int, int, DraftRule]] = []
    for order, group in enumerate(groups):
        made = _rule_of(group, names)
        if made is not None:
            rank, rule = made
            ranked.append((rank, order, rule))
    if not ranked:
        # Nothing looks like state or trouble: the most frequent line about objects, so that
        # the draft still shows how its objects are named.
        biggest = max(groups, key=lambda group: len(group.lines))
        made = _rule_of(biggest, names, fallback=True)
        assert made is not None
        ranked.append((0, 0, made[1]))
    ranked.sort(key=lambda item: (-item[0], item[1]))
    return [rule for _, _, rule in ranked[:MAX_RULES]]


def _rule_of(
    group: Group, names: set[str], *, fallback: bool = False
) -> tuple[int, DraftRule] | None:
    lines = group.lines
    objects = len({line.object for line in lines})
    state = state_of(group)
    levels = Counter(line.record.level for line in lines)
    trouble = sum(levels[level] for level in ("warning", "error", "fatal"))
    if state is None and not fallback and (trouble < len(lines) or len(lines) < 2):
        return None
    words = [word for word in group.shape if word is not None and WORD.fullmatch(word)]
    name = _unique(_slug(words[:5]) or f"rule-{len(names) + 1}", names)
    out = [""]
    example = lines[0].raw.replace("\n", " ")
    if len(example) > 160:
        example = example[:157] + "..."
    about = "1 object" if objects == 1 else f"{objects} objects"
    out.append(f"  # {len(lines)} lines about {about}, e.g.: {example}")
    match = _match_of(group, state)
    template, condition, values, key = "", "", Counter[str](), ""
    if state is not None:
        template, condition, values, key = state
        out.append(
            f"  # {condition} behaves like per-object state; values seen: "
            + ", ".join(f"{value} ({count})" for value, count in values.most_common())
        )
    elif fallback and trouble < len(lines):
        out.append("  # nothing here looked like state or trouble: the most frequent line")
    else:
        out.append("  # a warning or error that repeats")
    out.append(f"  - name: {name}")
    out.append(f"    match: {match}")
    out.append(f"    object: {object_text(group.naming)}   # {group.naming.note}")
    rank = len(lines)
    if state is not None:
        rank += 1_000_000
        failing = [value for value in values if failure_like(value, condition)]
        keyed = f"key: {quote(key)}, " if key else ""
        out.append(
            f"    transition: {{{keyed}state: {quote(template)}, first: skip}}"
            "   # first sighting: no Event"
        )
        label = camel(condition) or "State"
        if failing:
            out.append("    cases:                 # entering a failure-like state is a Warning")
            out.append(f"      - when: {{to: {{any: {_flow_list(failing)}}}}}")
            out.append("        type: Warning")
            out.append(f"        reason: {_reason(label + 'Failed')}")
        out.append("    type: Normal")
        out.append(f"    reason: {_reason(label + 'Changed')}")
        prefix = f"{key} " if key else ""
        out.append(f"    message: {quote(prefix + condition + ' {from} -> {to}')}")
    else:
        error_text = all(type(line.record.fields.get("error")) is str for line in lines)
        warning = trouble == len(lines)
        rank += 1000 if warning else 0
        out.append(f"    type: {'Warning' if warning else 'Normal'}")
        out.append(f"    reason: {_reason(camel(' '.join(words[:4])) or 'Logged')}")
        out.append(f"    message: {quote('{error}' if error_text else '{message}')}")
    return rank, DraftRule(name, "\n".join(out), sample(lines, state_reader(group, state)))


def _match_of(group: Group, state: tuple[str, str, Counter[str], str] | None) -> str:
    messages = {line.record.message for line in group.lines}
    parts = []
    if len(messages) == 1 and group.state_at is None and not group.naming.in_message:
        parts.append(f"message: {quote(next(iter(messages)))}")
    else:
        pattern = _pattern(group)
        parts.append(f"message: {{regex: {quote(pattern)}}}")
    levels = {line.record.level for line in group.lines}
    if state is None and len(levels) == 1 and levels <= {"warning", "error", "fatal"}:
        parts.append(f"level: {next(iter(levels))}")
    return "{" + ", ".join(parts) + "}"


def _pattern(group: Group) -> str:
    out = []
    for position, word in enumerate(group.shape):
        if position == group.state_at:
            out.append(f"(?P<{group.state_name}>[A-Za-z][A-Za-z0-9_-]*)")
        elif word is not None:
            out.append(_escape(word))
        elif group.naming.in_message and REF_IN_TEXT.search(group.lines[0].tokens[position]):
            token = group.lines[0].tokens[position]
            found = REF_IN_TEXT.search(token)
            assert found is not None
            out.append(
                _escape(token[: found.start()])
                + r"(?P<object>[A-Z][A-Za-z0-9]*\([^()\s]+\))"
                + r"\S*"
            )
        else:
            out.append(r"\S+")
    pattern = "^" + " ".join(out) + "$"
    try:
        compile_search(pattern)
    except RegexError:  # pragma: no cover: escaped above; never a broken draft
        pattern = "^" + _escape(group.lines[0].record.message) + "$"
    return pattern


def _escape(text: str) -> str:
    return "".join("\\" + char if char in _REGEX_SPECIAL else char for char in text)


def _slug(words: list[str]) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", " ".join(words).lower()).strip("-")
    return slug[:50].strip("-")


def _unique(name: str, names: set[str]) -> str:
    candidate, number = name, 2
    while candidate in names:
        candidate = f"{name}-{number}"
        number += 1
    names.add(candidate)
    return candidate


def _reason(text: str) -> str:
    text = re.sub(r"^[0-9]+", "", text)[:128]
    return text if text and text[0].isupper() else "Logged" + text[:120]


def _flow_list(values: list[str]) -> str:
    return "[" + ", ".join(quote(value) for value in values) + "]"
