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

from sidecar.records import ObjectRef, Record, text_of
from sidecar.rules.regex import compile_search
from sidecar.rules.schema import Condition, Match, ObjectSpec, Rule, RulesFile, Transition
from sidecar.rules.templates import MissingField, Template, compile_template, lookup_path

Test = Callable[[Any], bool]
_ABSENT = object()
#: Characters no log encoder escapes (JSON, Go's %q, logfmt): a literal made of these appears
#: verbatim in the raw line, so searching the bytes for it is exact. `<`, `>` and `&` are left
#: out because Go's encoding/json escapes them by default.
_VERBATIM = re.compile(r"[A-Za-z0-9 _.,:;!?/()\[\]{}=+*#%@$^|~`'-]+")


@dataclass(frozen=True, slots=True)
class ObjectTarget:
    """The involved object a rule names for one line, before the sink looks up its uid."""

    kind: str
    name: str
    namespace: str
    #: Empty when the rules did not give it; the Kubernetes sink asks discovery for the
    #: preferred version of `api_group` (or of any group serving `kind` when that is None too).
    api_version: str = ""
    api_group: str | None = None
    field_path: str = ""


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
    return CompiledRule(
        name=rule.name,
        type=rule.type,
        reason=rule.reason,
        message=compile_template(rule.message),
        transition=_compile_transition(rule.transition) if rule.transition else None,
        matches=_compile_match(rule.match),
        resolve_object=_compile_object(rule.object),
        literals=_literals(rule.match),
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
        search = compile_search(condition.regex)
        return lambda value: value is not _ABSENT and search(text_of(value))
    if condition.any is not None:
        choices = frozenset(text_of(choice) for choice in condition.any)
        return lambda value: value is not _ABSENT and text_of(value) in choices
    if condition.exists is not None:
        wanted = condition.exists
        return lambda value: (value is not _ABSENT) is wanted
    expected = text_of(condition.equals)
    return lambda value: value is not _ABSENT and text_of(value) == expected


def _compile_match(match: Match) -> Callable[[Record], bool]:
    """One closure per rule; cheapest and most selective checks first (message, then level)."""
    checks: list[Callable[[Record], bool]] = []
    if match.message is not None:
        if match.message.equals is not None and isinstance(match.message.equals, str):
            expected = match.message.equals
            checks.append(lambda record: record.message == expected)
        else:
            test = _compile_test(match.message)
            checks.append(lambda record: test(record.message))
    if match.level is not None:
        levels = frozenset(match.level)
        checks.append(lambda record: record.level in levels)
    if match.logger is not None:
        logger_test = _compile_test(match.logger)
        checks.append(lambda record: logger_test(record.logger))
    for name, condition in match.fields.items():
        checks.append(_field_check(tuple(name.split(".")), _compile_test(condition)))
    if len(checks) == 1:
        return checks[0]
    all_checks = tuple(checks)
    return lambda record: all(check(record) for check in all_checks)


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
