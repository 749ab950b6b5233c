"""Validated rules compiled into matchers that run on every decoded line.

Everything that can be done once is done here: regular expressions compiled, templates parsed,
comparison values turned into the text they are compared as, and the byte literals that a line must
contain for any rule to match derived for the pre-filter (see `sidecar.scan`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sidecar.model import ObjectTarget
from sidecar.records import ObjectRef, Record, text_of
from sidecar.rules.schema import Condition, Match, ObjectSpec, Rule, RulesFile, Transition
from sidecar.rules.templates import MissingField, Template, compile_template, lookup_path

Test = Callable[[Any], bool]


@dataclass(frozen=True, slots=True)
class Check:
    """One condition of a rule's `match`: the closure `matches` runs, and for `explain` what the
    user wrote (`name`, `wants`) and the value the line held there (`seen`)."""

    name: str
    wants: str
    test: Callable[[Record], bool]
    seen: Callable[[Record], Any]


_ABSENT = object()
#: Characters no log encoder escapes (JSON, Go's %q, logfmt): a literal made of these appears
#: verbatim in the raw line, so searching the bytes for it is exact. `<`, `>` and `&` are left
#: out because Go's encoding/json escapes them by default.
_VERBATIM = re.compile(r"[A-Za-z0-9 _.,:;!?/()\[\]{}=+*#%@$^|~`'-]+")


@dataclass(frozen=True, slots=True)
class CompiledTransition:
    state: Template
    key: Template
    first: str
    initial: str


@dataclass(frozen=True, slots=True)
class CompiledRule:
    name: str
    type: str
    reason: str
    message: Template
    transition: CompiledTransition | None
    matches: Callable[[Record], bool]
    resolve_object: Callable[[Record], ObjectTarget]
    #: Byte strings of which a matching line must contain at least one; None if underivable.
    literals: frozenset[bytes] | None
    #: The checks `matches` runs, in its order, named for `explain`.
    checks: tuple[Check, ...] = ()

    def first_failure(self, record: Record) -> Check | None:
        """The first condition `record` fails (None: the rule matches).

        It runs the very checks `matches` runs, in the same order, so what `explain` says about
        a line is what `run` did with it.
        """
        for check in self.checks:
            if not check.test(record):
                return check
        return None


@dataclass(frozen=True, slots=True)
class RuleSet:
    component: str
    rules: tuple[CompiledRule, ...]
    #: The union of every rule's literals, or None when some rule has none (no pre-filter).
    literals: frozenset[bytes] | None

    def first_match(self, record: Record) -> CompiledRule | None:
        """Rules are tried in file order; the first whose conditions hold wins."""
        for rule in self.rules:
            if rule.matches(record):
                return rule
        return None


def compile_rules(parsed: RulesFile) -> RuleSet:
    rules = tuple(_compile_rule(rule) for rule in parsed.rules)
    literals: frozenset[bytes] | None = frozenset()
    for rule in rules:
        if rule.literals is None or literals is None:
            literals = None
        else:
            literals |= rule.literals
    return RuleSet(parsed.component, rules, literals)


def _compile_rule(rule: Rule) -> CompiledRule:
    checks = _compile_checks(rule.match)
    return CompiledRule(
        name=rule.name,
        type=rule.type,
        reason=rule.reason,
        message=compile_template(rule.message),
        transition=_compile_transition(rule.transition) if rule.transition else None,
        matches=_combine(checks),
        resolve_object=_compile_object(rule.object),
        literals=_literals(rule.match),
        checks=checks,
    )


def _compile_transition(transition: Transition) -> CompiledTransition:
    return CompiledTransition(
        state=compile_template(transition.state),
        key=compile_template(transition.key),
        first=transition.first,
        initial=transition.initial,
    )


def _compile_test(condition: Condition) -> Test:
    if condition.regex is not None:
        search = re.compile(condition.regex).search
        return lambda value: value is not _ABSENT and search(text_of(value)) is not None
    if condition.any is not None:
        choices = frozenset(text_of(choice) for choice in condition.any)
        return lambda value: value is not _ABSENT and text_of(value) in choices
    if condition.exists is not None:
        wanted = condition.exists
        return lambda value: (value is not _ABSENT) is wanted
    expected = text_of(condition.equals)
    return lambda value: value is not _ABSENT and text_of(value) == expected


def _compile_checks(match: Match) -> tuple[Check, ...]:
    """One closure per condition; cheapest and most selective first (message, then level)."""
    checks: list[Check] = []
    if match.message is not None:
        wants, seen_message = describe(match.message), _attribute("message")
        if match.message.equals is not None and isinstance(match.message.equals, str):
            expected = match.message.equals
            checks.append(
                Check("message", wants, lambda record: record.message == expected, seen_message)
            )
        else:
            test = _compile_test(match.message)
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
                _attribute("level"),
            )
        )
    if match.logger is not None:
        logger_test = _compile_test(match.logger)
        checks.append(
            Check(
                "logger",
                describe(match.logger),
                lambda record: logger_test(record.logger),
                _attribute("logger"),
            )
        )
    for name, condition in match.fields.items():
        path = tuple(name.split("."))
        checks.append(
            Check(
                f"fields.{name}",
                describe(condition),
                _field_check(path, _compile_test(condition)),
                _field_value(path),
            )
        )
    return tuple(checks)


def describe(condition: Condition) -> str:
    """A condition as the rules file says it, for people: `= "Ready"`, `regex "^x"`, ..."""
    if condition.regex is not None:
        return f"regex {text_of(condition.regex)}"
    if condition.any is not None:
        return "any of " + ", ".join(text_of(choice) for choice in condition.any)
    if condition.exists is not None:
        return "present" if condition.exists else "absent"
    return f"= {text_of(condition.equals)}"


def _attribute(name: str) -> Callable[[Record], Any]:
    return lambda record: getattr(record, name)


def _field_value(path: tuple[str, ...]) -> Callable[[Record], Any]:
    """The value at `path`, or `_ABSENT`; for `explain` only (matching uses `_field_check`)."""

    def value(record: Record) -> Any:
        try:
            return lookup_path(record.fields, path)
        except MissingField:
            return _ABSENT

    return value


def is_absent(value: Any) -> bool:
    """Whether a `Check.seen` found nothing (the field is not in the line)."""
    return value is _ABSENT


def _combine(named: tuple[Check, ...]) -> Callable[[Record], bool]:
    """The rule's match: every check holds (one closure call for the common single check)."""
    checks = tuple(check.test for check in named)
    if len(checks) == 1:
        return checks[0]
    return lambda record: all(check(record) for check in checks)


def _field_check(path: tuple[str, ...], test: Test) -> Callable[[Record], bool]:
    def check(record: Record) -> bool:
        try:
            value = lookup_path(record.fields, path)
        except MissingField:
            value = _ABSENT
        return test(value)

    return check


def _compile_object(spec: ObjectSpec | None) -> Callable[[Record], ObjectTarget]:
    """Return a resolver that raises `MissingField` when the line lacks what the rule names."""
    if spec is None:
        return _resolve_auto
    kind = spec.kind
    api_version = spec.api_version or ""
    api_group: str | None = None
    if spec.api_version is not None:
        api_group = spec.api_version.rpartition("/")[0]
    field_path = compile_template(spec.field_path) if spec.field_path else None

    def finish(record: Record, ref: ObjectRef) -> ObjectTarget:
        if not ref.name:
            raise MissingField("name")
        path = render(field_path, record) if field_path is not None else ""
        return ObjectTarget(kind, ref.name, ref.namespace, api_version, api_group, path)

    if spec.name is not None:
        name = compile_template(spec.name)
        namespace = compile_template(spec.namespace) if spec.namespace is not None else None
        return lambda record: finish(
            record,
            ObjectRef(render(name, record), render(namespace, record) if namespace else ""),
        )
    keys = (spec.ref,) if spec.ref is not None else (kind, "")
    return lambda record: finish(record, _find_ref(record, keys))


def _find_ref(record: Record, keys: tuple[str, ...]) -> ObjectRef:
    for key in keys:
        ref = record.ref(key)
        if ref is not None:
            return ref
    # A bare string is a cluster-scoped name (klog's KObj of a cluster-scoped object).
    value = record.fields.get(keys[0])
    if type(value) is str and value:
        return ObjectRef(value)
    raise MissingField(keys[0] or "name")


def _resolve_auto(record: Record) -> ObjectTarget:
    """controller-runtime logs controllerGroup, controllerKind and `Kind: {name, namespace}`."""
    kind = record.fields.get("controllerKind")
    group = record.fields.get("controllerGroup")
    if type(kind) is not str or not kind:
        raise MissingField("controllerKind")
    if type(group) is not str:
        raise MissingField("controllerGroup")
    ref = _find_ref(record, (kind, ""))
    if not ref.name:
        raise MissingField("name")
    # The core group has one version; other groups are resolved through discovery.
    return ObjectTarget(kind, ref.name, ref.namespace, "v1" if group == "" else "", group)


def render(template: Template, record: Record, extra: dict[str, str] | None = None) -> str:
    """Render a template against a record, plus `extra` names (a transition's from and to).

    Raise `MissingField` when the line lacks a name the template reads.
    """
    if template.constant is not None:
        return template.constant
    out = []
    for literal, path in template.parts:
        out.append(literal)
        if path is not None:
            out.append(text_of(_lookup(record, path, extra)))
    return "".join(out)


def _lookup(record: Record, path: tuple[str, ...], extra: dict[str, str] | None) -> Any:
    if len(path) == 1:
        key = path[0]
        if extra is not None and key in extra:
            return extra[key]
        value = record.fields.get(key, _ABSENT)
        if value is not _ABSENT:
            return value
        attribute = _RECORD_NAMES.get(key)
        if attribute is None:
            raise MissingField(key)
        return getattr(record, attribute)
    return lookup_path(record.fields, path)


#: Template names that fall back to the record's own attributes when no field has the name.
_RECORD_NAMES = {"message": "message", "msg": "message", "level": "level", "logger": "logger"}


def _literals(match: Match) -> frozenset[bytes] | None:
    """The byte strings one of which every line this rule matches must contain, if derivable."""
    candidates: list[frozenset[bytes] | None] = []
    if match.message is not None:
        candidates.append(_condition_literals(match.message))
    for condition in match.fields.values():
        candidates.append(_condition_literals(condition))
    usable = [found for found in candidates if found is not None]
    if not usable:
        return None
    # The set whose shortest literal is longest is the most selective.
    return max(usable, key=lambda found: min(len(literal) for literal in found))


def _condition_literals(condition: Condition) -> frozenset[bytes] | None:
    if condition.any is not None:
        values = list(condition.any)
    elif "equals" in condition.model_fields_set and condition.regex is None:
        values = [condition.equals]
    else:
        return None
    found: set[bytes] = set()
    for value in values:
        # Only strings are written verbatim: a number may be spelt 1e-7 or 0.0000001, and JSON
        # text inside a value may have spaces the compact spelling lacks.
        if type(value) is not str or value.startswith(("{", "[")):
            return None
        runs = _VERBATIM.findall(value)
        if not runs:
            return None
        found.add(max(runs, key=len).encode())
    return frozenset(found)
