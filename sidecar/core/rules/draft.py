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

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sidecar.core.lines.records import ObjectRef, Record, ref_of
from sidecar.core.rules.paths import Key, Select, format_path
from sidecar.core.rules.regex import RegexError, compile_search

#: Distinct values a state may take: a real state machine has a handful; more is data.
MAX_STATES = 12
#: Rules a draft proposes at most: the most telling come first.
MAX_RULES = 40
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

#: Lower-case field names that name built-in kinds (`pod=ns/name`, `"node": "n1"`).
KNOWN_KINDS: dict[str, tuple[str, str]] = {
    "pod": ("Pod", "v1"),
    "node": ("Node", "v1"),
    "namespace": ("Namespace", "v1"),
    "service": ("Service", "v1"),
    "svc": ("Service", "v1"),
    "configmap": ("ConfigMap", "v1"),
    "secret": ("Secret", "v1"),
    "serviceaccount": ("ServiceAccount", "v1"),
    "pvc": ("PersistentVolumeClaim", "v1"),
    "persistentvolumeclaim": ("PersistentVolumeClaim", "v1"),
    "pv": ("PersistentVolume", "v1"),
    "persistentvolume": ("PersistentVolume", "v1"),
    "endpoints": ("Endpoints", "v1"),
    "deployment": ("Deployment", "apps/v1"),
    "statefulset": ("StatefulSet", "apps/v1"),
    "daemonset": ("DaemonSet", "apps/v1"),
    "replicaset": ("ReplicaSet", "apps/v1"),
    "job": ("Job", "batch/v1"),
    "cronjob": ("CronJob", "batch/v1"),
    "lease": ("Lease", "coordination.k8s.io/v1"),
    "ingress": ("Ingress", "networking.k8s.io/v1"),
}
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
_KIND = re.compile(r"[A-Z][A-Za-z0-9]*")
_REF_IN_TEXT = re.compile(r"([A-Z][A-Za-z0-9]*)\((?:[a-z0-9](?:[-a-z0-9]*[a-z0-9])?/)?[^()/\s]+\)")
_WORD = re.compile(r"[A-Za-z][A-Za-z_-]*")
_STATE_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,40}")
_VOLATILE = re.compile(r"[0-9\"'`=<>{}\[\]]|^https?:|.{41,}")
_REGEX_SPECIAL = frozenset("\\.+*?()|[]{}^$")


@dataclass(frozen=True, slots=True)
class Naming:
    """How a rule names the object of a line: the `object:` mapping (as YAML entries), a
    comment, and the object the line names."""

    entries: tuple[tuple[str, str], ...]
    note: str
    #: Written in the message as `Kind(ns/name)`: captured by the group `object`.
    in_message: bool = False


@dataclass(slots=True)
class _Line:
    raw: str
    record: Record
    object: tuple[str, str, str]
    tokens: list[str]
    #: Its place in the log, to put merged groups' lines back in order.
    seq: int


@dataclass(slots=True)
class _Group:
    naming: Naming
    #: Per token: the literal, or None where the token varies.
    shape: tuple[str | None, ...]
    lines: list[_Line] = field(default_factory=list)
    #: The position of a state word captured from the message.
    state_at: int | None = None
    state_name: str = ""


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
            f"component: {_quote(self.component)}",
            "rules:",
        ]
        return "\n".join(head) + "\n" + "\n".join(rule.text for rule in self.rules)


def draft_rules(
    lines: Iterable[tuple[str, Record]], component: str, *, read: int | None = None
) -> Draft | None:
    """A draft for the log's decoded lines (each with its text as it was in the log), of `read`
    lines in all; None when no line names an object (a rule needs one to address its Event)."""
    groups: dict[tuple[Naming, tuple[str | None, ...]], _Group] = {}
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
            group = groups[key] = _Group(naming, shape)
        group.lines.append(_Line(raw, record, target, tokens, total))
    if not groups:
        return None
    merged = _merge_state_words(list(groups.values()))
    rules = _rules(merged)
    return Draft(component, tuple(rules), total if read is None else read, total, naming_count)


def name_object(record: Record) -> tuple[Naming, tuple[str, str, str]] | None:
    """How a rule can name the object `record` is about, and that object (kind, ns, name)."""
    fields = record.fields
    kind = fields.get("controllerKind")
    if type(kind) is str and kind and type(fields.get("controllerGroup")) is str:
        ref = record.ref(kind) or record.ref("")
        if ref is not None and ref.name:
            return Naming((), "controller-runtime's controllerKind and its reference"), (
                kind,
                ref.namespace,
                ref.name,
            )
    for key in fields:
        if key.endswith(".name") and type(fields[key]) is str and fields[key]:
            # Literal dotted keys of one object (the Java Operator SDK's MDC `resource.name`,
            # `resource.kind`, ...): the object is written out from its parts.
            prefix = key[: -len(".name")]
            kind = fields.get(prefix + ".kind")
            if type(kind) is not str or not _KIND.fullmatch(kind):
                continue
            parts = [
                (written, "{" + prefix + "." + part + "}")
                for written, part in (
                    ("apiVersion", "apiVersion"),
                    ("kind", "kind"),
                    ("name", "name"),
                    ("namespace", "namespace"),
                    ("uid", "uid"),
                )
                if type(fields.get(prefix + "." + part)) is str
            ]
            namespace = fields.get(prefix + ".namespace")
            return Naming(tuple(parts), f"the line's {prefix}.* keys"), (
                kind,
                namespace if type(namespace) is str else "",
                fields[key],
            )
    for path, value in _values(fields):
        written = format_path(path)
        key = path[-1] if type(path[-1]) is str else ""
        ref = ref_of(value)
        if ref is not None and ref.name and ref.kind and _KIND.fullmatch(ref.kind):
            return Naming((("ref", written),), f"{written} carries the kind: {ref.kind}"), _target(
                ref
            )
        if len(path) != 1:
            continue
        if _KIND.fullmatch(key) and ref is not None and ref.name:
            return Naming((("kind", key),), f"the field {key} is named after its kind"), (
                key,
                ref.namespace,
                ref.name,
            )
        known = KNOWN_KINDS.get(key.lower())
        if known is not None and key != "namespace":
            kind_name, version = known
            entries: tuple[tuple[str, str], ...] = (
                ("apiVersion", version),
                ("kind", kind_name),
                ("ref", written),
            )
            if ref is not None and ref.name:
                return Naming(entries, f"{written} holds a {kind_name}"), (
                    kind_name,
                    ref.namespace,
                    ref.name,
                )
            if type(value) is str and value and " " not in value:
                namespace = fields.get("namespace")
                if type(namespace) is str and namespace and kind_name != "Node":
                    entries = (*entries, ("namespace", "{namespace}"))
                    return Naming(entries, f"{written} holds a {kind_name}'s name"), (
                        kind_name,
                        namespace,
                        value,
                    )
                return Naming(entries, f"{written} holds a {kind_name}'s name"), (
                    kind_name,
                    "",
                    value,
                )
    name, namespace = fields.get("name"), fields.get("namespace")
    if type(name) is str and name and type(namespace) is str and namespace:
        entries = (
            ("apiVersion", "example.com/v1"),
            ("kind", "ChangeMe"),
            ("name", "{name}"),
            ("namespace", "{namespace}"),
        )
        return Naming(
            entries, "the line says namespace and name but not the kind: write it here"
        ), ("ChangeMe", namespace, name)
    found = _REF_IN_TEXT.search(record.message)
    if found is not None:
        ref = ref_of(found.group())
        if ref is not None:
            return Naming(
                (("ref", "object"),),
                "the message names it as Kind(namespace/name), captured as `object`",
                in_message=True,
            ), _target(ref)
    return None


def _target(ref: ObjectRef) -> tuple[str, str, str]:
    return (ref.kind, ref.namespace, ref.name)


def _values(fields: dict[str, Any]) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Top-level values, then those one mapping down (tracing's `span`), then those of list
    elements chosen by their `kind` or `name` (tracing's `spans[name="..."]`)."""
    for key, value in fields.items():
        yield (key,), value
    for key, value in fields.items():
        if type(value) is dict:
            for inner, deeper in value.items():
                yield (key, _step(inner)), deeper
    for key, value in fields.items():
        if type(value) is not list:
            continue
        for item in value:
            if type(item) is not dict:
                continue
            kind, name = item.get("kind"), item.get("name")
            if type(kind) is str and _SELECTABLE.fullmatch(kind):
                yield (key, Select("kind", kind)), item
            elif type(name) is str and name:
                for inner, deeper in item.items():
                    yield (key, Select("name", name), _step(inner)), deeper


def _step(name: str) -> str:
    return name if _PLAIN_NAME.fullmatch(name) else Key(name)


_SELECTABLE = re.compile(r"[A-Za-z0-9][-A-Za-z0-9_.]*")
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def _varies(token: str, target: tuple[str, str, str], in_message: bool) -> bool:
    if not token:
        return False
    _, namespace, name = target
    for named in (name, namespace):
        # A short name (`a`) is in many words by chance: only the whole word is the name.
        if named and (token == named or (len(named) >= 4 and named in token)):
            return True
    if in_message and _REF_IN_TEXT.search(token):
        return True
    return _VOLATILE.search(token) is not None


def _merge_state_words(groups: list[_Group]) -> list[_Group]:
    """Merge groups whose messages differ in one word only, when that word behaves like a
    state of the object (few values, changing for one object): `Phase changed to Ready` and
    `Phase changed to Failed` become one group capturing the word."""
    taken: set[int] = set()
    out: list[_Group] = []
    for length in sorted({len(group.shape) for group in groups}):
        same = [(n, g) for n, g in enumerate(groups) if len(g.shape) == length]
        for position in reversed(range(length)):
            families: dict[tuple[Naming, tuple[str | None, ...]], list[tuple[int, _Group]]] = {}
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
                if not _count_changes([(line.object, line.tokens[position]) for line in lines]):
                    continue
                first = members[0][1]
                shape = (*first.shape[:position], None, *first.shape[position + 1 :])
                merged = _Group(first.naming, shape, lines, position)
                merged.state_name = _state_name(shape, position)
                taken.update(number for number, _ in members)
                out.append(merged)
    out.extend(group for number, group in enumerate(groups) if number not in taken)
    return out


def _state_name(shape: tuple[str | None, ...], position: int) -> str:
    for word in shape[:position]:
        if word is not None and _WORD.fullmatch(word) and len(word) > 2:
            name = re.sub(r"[^a-z0-9_]", "_", word.lower())
            if name not in ("the", "changed", "now", "from", "into", "was", "has", "is"):
                return name
    return "state"


def _rules(groups: list[_Group]) -> list[DraftRule]:
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
    group: _Group, names: set[str], *, fallback: bool = False
) -> tuple[int, DraftRule] | None:
    lines = group.lines
    objects = len({line.object for line in lines})
    state = _state_of(group)
    levels = Counter(line.record.level for line in lines)
    trouble = sum(levels[level] for level in ("warning", "error", "fatal"))
    if state is None and not fallback and (trouble < len(lines) or len(lines) < 2):
        return None
    words = [word for word in group.shape if word is not None and _WORD.fullmatch(word)]
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
    out.append(f"    object: {_object_text(group.naming)}   # {group.naming.note}")
    rank = len(lines)
    if state is not None:
        rank += 1_000_000
        failing = [value for value in values if _failure_like(value, condition)]
        keyed = f"key: {_quote(key)}, " if key else ""
        out.append(
            f"    transition: {{{keyed}state: {_quote(template)}, first: skip}}"
            "   # first sighting: no Event"
        )
        label = _camel(condition) or "State"
        if failing:
            out.append("    cases:                 # entering a failure-like state is a Warning")
            out.append(f"      - when: {{to: {{any: {_flow_list(failing)}}}}}")
            out.append("        type: Warning")
            out.append(f"        reason: {_reason(label + 'Failed')}")
        out.append("    type: Normal")
        out.append(f"    reason: {_reason(label + 'Changed')}")
        prefix = f"{key} " if key else ""
        out.append(f"    message: {_quote(prefix + condition + ' {from} -> {to}')}")
    else:
        error_text = all(type(line.record.fields.get("error")) is str for line in lines)
        warning = trouble == len(lines)
        rank += 1000 if warning else 0
        out.append(f"    type: {'Warning' if warning else 'Normal'}")
        out.append(f"    reason: {_reason(_camel(' '.join(words[:4])) or 'Logged')}")
        out.append(f"    message: {_quote('{error}' if error_text else '{message}')}")
    return rank, DraftRule(name, "\n".join(out), _sample(lines, _state_reader(group, state)))


def _state_reader(
    group: _Group, state: tuple[str, str, Counter[str], str] | None
) -> Callable[[_Line], Any] | None:
    """What a line's (key, state) is, as the drafted transition renders them."""
    if state is None:
        return None
    position = group.state_at
    if position is not None:
        return lambda line: ("", line.tokens[position])
    field_name, key = state[1], state[3][1:-1]
    return lambda line: (
        line.record.fields.get(key) if key else "",
        _state_text(line.record.fields.get(field_name)),
    )


def _state_of(group: _Group) -> tuple[str, str, Counter[str], str] | None:
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
        if key in _NOT_STATE or not _PLAIN_NAME.fullmatch(key):
            continue
        texts = [_state_text(line.record.fields.get(key)) for line in lines]
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
            changes = _count_changes(list(zip(keys, column, strict=True)))
            chances = len(lines) - len(set(keys))
            if changes and changes * 5 <= chances * 4:
                if best is None or changes > best[0]:
                    best = (changes, key, by)
                break  # the simplest key that makes it a state
    if best is None:
        return None
    _, key, by = best
    return "{" + key + "}", key, Counter(columns[key]), "{" + by + "}" if by else ""


def _state_text(value: Any) -> str | None:
    if type(value) is str and value and len(value) <= 40 and "\n" not in value:
        return value
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) is int and abs(value) < 1000:
        return str(value)
    return None


def _count_changes(seen: list[tuple[Any, str]]) -> int:
    """How often a value differs from the one before it for the same object (and key)."""
    last: dict[Any, str] = {}
    changes = 0
    for target, value in seen:
        before = last.get(target)
        if before is not None and before != value:
            changes += 1
        last[target] = value
    return changes


def _match_of(group: _Group, state: tuple[str, str, Counter[str], str] | None) -> str:
    messages = {line.record.message for line in group.lines}
    parts = []
    if len(messages) == 1 and group.state_at is None and not group.naming.in_message:
        parts.append(f"message: {_quote(next(iter(messages)))}")
    else:
        pattern = _pattern(group)
        parts.append(f"message: {{regex: {_quote(pattern)}}}")
    levels = {line.record.level for line in group.lines}
    if state is None and len(levels) == 1 and levels <= {"warning", "error", "fatal"}:
        parts.append(f"level: {next(iter(levels))}")
    return "{" + ", ".join(parts) + "}"


def _pattern(group: _Group) -> str:
    out = []
    for position, word in enumerate(group.shape):
        if position == group.state_at:
            out.append(f"(?P<{group.state_name}>[A-Za-z][A-Za-z0-9_-]*)")
        elif word is not None:
            out.append(_escape(word))
        elif group.naming.in_message and _REF_IN_TEXT.search(group.lines[0].tokens[position]):
            token = group.lines[0].tokens[position]
            found = _REF_IN_TEXT.search(token)
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


def _object_text(naming: Naming) -> str:
    if not naming.entries:
        return "auto"
    return "{" + ", ".join(f"{key}: {_quote(value)}" for key, value in naming.entries) + "}"


def _failure_like(value: str, condition: str) -> bool:
    if value == "false":
        return _HEALTH.search(condition) is not None
    return _FAILURE.search(value) is not None


def _sample(lines: list[_Line], state: Callable[[_Line], Any] | None = None) -> tuple[str, ...]:
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


def camel(text: str) -> str:
    """`text` as an UpperCamelCase word: `in_progress` -> `InProgress`, `Failed` stays."""
    words = re.findall(r"[A-Za-z0-9]+", text)
    return "".join(word[:1].upper() + word[1:] for word in words)


_camel = camel


def _reason(text: str) -> str:
    text = re.sub(r"^[0-9]+", "", text)[:128]
    return text if text and text[0].isupper() else "Logged" + text[:120]


def _flow_list(values: list[str]) -> str:
    return "[" + ", ".join(_quote(value) for value in values) + "]"


def _quote(value: str) -> str:
    """A YAML scalar that reads back as the very text: JSON's double quotes are YAML's."""
    return json.dumps(value, ensure_ascii=False)
