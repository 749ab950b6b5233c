"""Validated rules compiled into matchers that run on every decoded line.

Everything that can be done once is done here: regular expressions compiled, templates parsed,
comparison values turned into the text they are compared as, and the byte literals that a line must
contain for any rule to match derived for the pre-filter (see `sidecar.core.lines.scan`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sidecar.core.lines.formats.declared import BUILTIN_ONLY, Formats
from sidecar.core.lines.records import ObjectRef, Record, ref_of, text_of
from sidecar.core.rules.formats import compile_formats
from sidecar.core.rules.paths import Path, format_path, is_plain, lookup_path
from sidecar.core.rules.paths import field_path as path_of
from sidecar.core.rules.regex import compile_captures, compile_search, required_strings
from sidecar.core.rules.schema import (
    API_VERSION,
    KIND,
    Case,
    Condition,
    Match,
    ObjectSpec,
    Rule,
    RulesFile,
    Scalar,
    Transition,
)
from sidecar.core.rules.templates import ENV, MissingField, Template, bind_env
from sidecar.core.rules.templates import compile_template as _parse_template
from sidecar.model import ObjectTarget

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
_UPPER_ESCAPES = re.compile(r"\\u[0-9a-f]{4}")
#: Non-ASCII characters that JSON, Go's %q and logfmt still escape; every other printable one is
#: written as its UTF-8 bytes (or as a \u escape by ASCII-only encoders).
_ESCAPED_ANYWAY = frozenset("\u2028\u2029")


def _verbatim_runs(value: str) -> list[str]:
    """The longest stretches of `value` a log line holds as they are (see `_VERBATIM`)."""
    runs: list[str] = []
    current: list[str] = []
    for char in value:
        if (
            _VERBATIM.fullmatch(char)
            if char.isascii()
            else char.isprintable() and char not in _ESCAPED_ANYWAY
        ):
            current.append(char)
        elif current:
            runs.append("".join(current))
            current = []
    if current:
        runs.append("".join(current))
    return runs


@dataclass(frozen=True, slots=True)
class CompiledTransition:
    state: Template
    key: Template
    first: str
    initial: str
    #: The name the state is kept under: the rule's own name unless `transition.tracker` is set.
    tracker: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a transition becomes: an Event of this type, reason and message, or none."""

    emit: bool
    type: str
    reason: str
    message: Template


@dataclass(frozen=True, slots=True)
class CompiledCase:
    to: Test | None
    from_: Test | None
    outcome: Outcome

    def holds(self, before: str, after: str) -> bool:
        return (self.to is None or self.to(after)) and (self.from_ is None or self.from_(before))


@dataclass(frozen=True, slots=True)
class CompiledRule:
    name: str
    type: str
    reason: str
    message: Template
    transition: CompiledTransition | None
    #: The rule's cases in order; the rule's own type, reason and message when none holds.
    cases: tuple[CompiledCase, ...]
    matches: Callable[[Record], bool]
    resolve_object: Callable[[Record], ObjectTarget]
    #: Byte strings of which a matching line must contain at least one; None if underivable.
    literals: frozenset[bytes] | None
    #: The checks `matches` runs, in its order, named for `explain`.
    checks: tuple[Check, ...] = ()
    #: events.k8s.io/v1's `action` ("": the Event's reason), and the resolver of its
    #: optional `related` object.
    action: str = ""
    resolve_related: Callable[[Record], ObjectTarget] | None = None
    #: The named groups of the rule's `regex:` conditions on a matched line, which its
    #: templates, object and transition read as fields; None: the rule has no named group.
    captures: Callable[[Record], dict[str, str]] | None = None
    #: False: the rule consumes the lines it matches without an Event (`emit: false`).
    emit: bool = True

    def first_failure(self, record: Record) -> Check | None:
        """The first condition `record` fails (None: the rule matches).

        It runs the very checks `matches` runs, in the same order, so what `explain` says about
        a line is what `run` did with it.
        """
        for check in self.checks:
            if not check.test(record):
                return check
        return None

    def choose(self, before: str, after: str) -> tuple[int | None, Outcome]:
        """The first case that holds for the transition `before -> after` (its index, 0-based,
        for `explain`), else the rule's own outcome (index None)."""
        for index, case in enumerate(self.cases):
            if case.holds(before, after):
                return index, case.outcome
        return None, Outcome(True, self.type, self.reason, self.message)


@dataclass(frozen=True, slots=True)
class RuleSet:
    component: str
    rules: tuple[CompiledRule, ...]
    #: The union of every rule's literals, or None when some rule has none (no pre-filter).
    literals: frozenset[bytes] | None
    #: The line formats the file declares, and whether the built-in ones are tried too.
    formats: Formats = BUILTIN_ONLY

    def first_match(self, record: Record) -> CompiledRule | None:
        """Rules are tried in file order; the first whose conditions hold wins."""
        for rule in self.rules:
            if rule.matches(record):
                return rule
        return None


def compile_rules(parsed: RulesFile, env: Mapping[str, str] | None = None) -> RuleSet:
    """Compile every rule; `{env.NAME}` in templates takes its value from `env` now."""
    environment: Mapping[str, str] = env if env is not None else {}

    def compile_template(source: str) -> Template:
        return bind_env(_parse_template(source), environment)

    rules = tuple(_compile_rule(rule, compile_template) for rule in parsed.rules)
    literals: frozenset[bytes] | None = frozenset()
    for rule in rules:
        if rule.literals is None or literals is None:
            literals = None
        else:
            literals |= rule.literals
    return RuleSet(parsed.component, rules, literals, compile_formats(parsed.formats))


TemplateCompiler = Callable[[str], Template]


def _compile_rule(rule: Rule, compile_template: TemplateCompiler) -> CompiledRule:
    message = compile_template(rule.message)
    checks = _compile_checks(rule.match)
    return CompiledRule(
        name=rule.name,
        type=rule.type,
        reason=rule.reason,
        message=message,
        transition=(
            _compile_transition(rule.transition, rule.name, compile_template)
            if rule.transition
            else None
        ),
        cases=tuple(_compile_case(case, rule, message, compile_template) for case in rule.cases),
        matches=_combine(checks),
        resolve_object=_compile_object(rule.object, compile_template),
        literals=_literals(rule.match),
        captures=_compile_captures(rule.match),
        emit=rule.emit,
        checks=checks,
        action=rule.action or "",
        resolve_related=(
            None
            if rule.related is None
            else _compile_object(None if rule.related == "auto" else rule.related, compile_template)
        ),
    )


def _compile_transition(
    transition: Transition, rule: str, compile_template: TemplateCompiler
) -> CompiledTransition:
    return CompiledTransition(
        state=compile_template(transition.state),
        key=compile_template(transition.key),
        first=transition.first,
        initial=transition.initial,
        tracker=transition.tracker or rule,
    )


def _compile_case(
    case: Case, rule: Rule, message: Template, compile_template: TemplateCompiler
) -> CompiledCase:
    when = case.when
    outcome = Outcome(
        case.emit,
        case.type or rule.type,
        case.reason or rule.reason,
        compile_template(case.message) if case.message is not None else message,
    )
    if when is None:
        return CompiledCase(None, None, outcome)
    to = _compile_test(when.to) if when.to is not None else None
    from_ = _compile_test(when.from_) if when.from_ is not None else None
    return CompiledCase(to, from_, outcome)


def _compile_test(condition: Condition) -> Test:
    if condition.not_ is not None:
        inner = _compile_test(condition.not_)
        return lambda value: not inner(value)
    if condition.regex is not None:
        search = compile_search(condition.regex)
        return lambda value: value is not _ABSENT and search(text_of(value))
    if condition.any is not None:
        texts = frozenset(choice for choice in condition.any if type(choice) is str)
        others = tuple(_equals(choice) for choice in condition.any if type(choice) is not str)
        if not others:
            return lambda value: value is not _ABSENT and text_of(value) in texts
        return lambda value: (
            value is not _ABSENT
            and (text_of(value) in texts or any(test(value) for test in others))
        )
    if condition.exists is not None:
        wanted = condition.exists
        return lambda value: (value is not _ABSENT) is wanted
    if type(condition.equals) is str:
        expected = condition.equals  # the common case, inlined: this runs on every candidate
        return lambda value: value is not _ABSENT and text_of(value) == expected
    equals = _equals(condition.equals)
    return lambda value: value is not _ABSENT and equals(value)


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
        path = path_of(name)
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
    if condition.not_ is not None:
        return f"not ({describe(condition.not_)})"
    if condition.regex is not None:
        return f"regex {text_of(condition.regex)}"
    if condition.any is not None:
        return "any of " + ", ".join(text_of(choice) for choice in condition.any)
    if condition.exists is not None:
        return "present" if condition.exists else "absent"
    return f"= {text_of(condition.equals)}"


def _attribute(name: str) -> Callable[[Record], Any]:
    return lambda record: getattr(record, name)


def _field_value(path: Path) -> Callable[[Record], Any]:
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
    if len(checks) == 2:  # a message and a level, say: no generator per line
        first, second = checks
        return lambda record: first(record) and second(record)
    return lambda record: all(check(record) for check in checks)


def _field_check(path: Path, test: Test) -> Callable[[Record], bool]:
    def check(record: Record) -> bool:
        try:
            value = lookup_path(record.fields, path)
        except MissingField:
            value = _ABSENT
        return test(value)

    return check


def _compile_object(
    spec: ObjectSpec | None, compile_template: TemplateCompiler
) -> Callable[[Record], ObjectTarget]:
    """Return a resolver that raises `MissingField` when the line lacks what the rule names."""
    if spec is None:
        return _resolve_auto
    kind = spec.kind or ""
    api_version = spec.api_version or ""
    api_group: str | None = None
    if spec.api_version is not None:
        api_group = spec.api_version.rpartition("/")[0]
    field_path = compile_template(spec.field_path) if spec.field_path else None

    def named(record: Record, ref: ObjectRef) -> ObjectTarget:
        if not ref.name:
            raise MissingField("name")
        path = render(field_path, record) if field_path is not None else ""
        return ObjectTarget(kind, ref.name, ref.namespace, api_version, api_group, path)

    finish: Callable[[Record, ObjectRef], ObjectTarget] = named
    if (
        spec.kind is None
        or "{" in spec.kind
        or (spec.api_version is not None and "{" in spec.api_version)
        or spec.uid is not None
    ):
        finish = _compile_identity(spec, compile_template, field_path)

    if spec.name is not None:
        name = compile_template(spec.name)
        namespace = compile_template(spec.namespace) if spec.namespace is not None else None
        return lambda record: finish(
            record,
            ObjectRef(render(name, record), render(namespace, record) if namespace else ""),
        )
    if spec.ref is not None:
        ref_path = path_of(spec.ref)
        if len(ref_path) > 1 or not is_plain(ref_path):
            # A path into the line; `a.b` is first the key `a.b`, as it always was.
            return _compile_ref_path(ref_path, spec, finish, compile_template)
    if spec.ref is not None:
        keys: tuple[str, ...] = (spec.ref,)
    elif "{" in kind:
        keys = ("",)  # a kind from the line names no field to look in
    else:
        keys = (kind, "")
    if spec.ref is not None and spec.namespace is not None:
        bare_namespace = compile_template(spec.namespace)
        return lambda record: finish(
            record, _find_ref(record, keys, lambda: render(bare_namespace, record))
        )
    return lambda record: finish(record, _find_ref(record, keys))


def _compile_identity(
    spec: ObjectSpec, compile_template: TemplateCompiler, field_path: Template | None
) -> Callable[[Record, ObjectRef], ObjectTarget]:
    """`finish` for an object whose kind, apiVersion or uid come from the line: templates, or
    (without `kind`) the reference itself. A rendered kind or apiVersion that is not one is a
    miss of that field, never an Event about a made-up object."""
    own = spec.kind is None
    kind = compile_template(spec.kind) if spec.kind is not None else None
    version = compile_template(spec.api_version) if spec.api_version is not None else None
    uid = compile_template(spec.uid) if spec.uid is not None else None

    def finish(record: Record, ref: ObjectRef) -> ObjectTarget:
        if not ref.name:
            raise MissingField("name")
        the_kind = ref.kind if kind is None else render(kind, record)
        if not KIND.fullmatch(the_kind):
            raise MissingField("kind")
        the_version = render(version, record) if version is not None else ""
        if own and version is None:
            the_version = ref.api_version
        if the_version and not API_VERSION.fullmatch(the_version):
            raise MissingField("apiVersion")
        the_uid = render(uid, record) if uid is not None else ref.uid if own else ""
        return ObjectTarget(
            the_kind,
            ref.name,
            ref.namespace,
            the_version,
            the_version.rpartition("/")[0] if the_version else None,
            render(field_path, record) if field_path is not None else "",
            the_uid,
        )

    return finish


def _compile_ref_path(
    path: Path,
    spec: ObjectSpec,
    finish: Callable[[Record, ObjectRef], ObjectTarget],
    compile_template: TemplateCompiler,
) -> Callable[[Record], ObjectTarget]:
    """`ref` as a path into the line (`status.owner`, `refs[kind=Pod]`): the value there, read
    as a field named by `ref` is (`{name, namespace}`, `ns/name`, or a bare name)."""
    bare = compile_template(spec.namespace) if spec.namespace is not None else None
    name = format_path(path)

    def resolve(record: Record) -> ObjectTarget:
        value = lookup_path(record.fields, path)
        ref = ref_of(value)
        if ref is None:
            if type(value) is not str or not value:
                raise MissingField(name)
            ref = ObjectRef(value, render(bare, record) if bare is not None else "")
        return finish(record, ref)

    return resolve


def _find_ref(
    record: Record, keys: tuple[str, ...], bare_namespace: Callable[[], str] | None = None
) -> ObjectRef:
    for key in keys:
        ref = record.ref(key)
        if ref is not None:
            return ref
    # A bare string is a name in the rule's `namespace`, else a cluster-scoped name (klog's KObj
    # of a cluster-scoped object).
    value = record.fields.get(keys[0])
    if type(value) is str and value:
        return ObjectRef(value, bare_namespace() if bare_namespace is not None else "")
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
    constant = template.constant
    if constant is not None:
        return constant
    # Runs per matched line, several times (object, state, key, message): `_lookup`'s common
    # case (a top-level field, a string) is inlined.
    fields = record.fields
    out = []
    for literal, path in template.parts:
        if literal:
            out.append(literal)
        if path is not None:
            if len(path) == 1 and (extra is None or path[0] not in extra):
                # A path's first step is always a name (`parse_path`), never [N] or [k=v].
                value = fields.get(path[0], _ABSENT)  # type: ignore[arg-type]
                if value is _ABSENT:
                    value = _lookup(record, path, extra)
            else:
                value = _lookup(record, path, extra)
            out.append(value if type(value) is str else text_of(value))
    return out[0] if len(out) == 1 else "".join(out)


def _lookup(record: Record, path: Path, extra: dict[str, str] | None) -> Any:
    if len(path) == 1 and isinstance(path[0], str):
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
    if path[0] == ENV and len(path) == 2:
        # Left by `bind_env` only when the variable was unset at load time.
        raise MissingField(format_path(path))
    return lookup_path(record.fields, path)


#: Template names that fall back to the record's own attributes when no field has the name.
_RECORD_NAMES = {"message": "message", "msg": "message", "level": "level", "logger": "logger"}


def _literals(match: Match) -> frozenset[bytes] | None:
    """The byte strings one of which every line this rule matches must contain, if derivable."""
    candidates: list[frozenset[bytes] | None] = []
    if match.message is not None:
        candidates.append(_condition_literals(match.message))
        candidates.extend(_regex_literals(match.message, any_value=False))
    if match.logger is not None:
        candidates.extend(_regex_literals(match.logger, any_value=False))
    for condition in match.fields.values():
        candidates.append(_condition_literals(condition))
        candidates.extend(_regex_literals(condition, any_value=True))
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
        spellings = _spellings(value)
        if spellings is None:
            return None
        found |= spellings
    return frozenset(found)


def _spellings(value: str) -> frozenset[bytes] | None:
    """The byte strings one of which a line holding the text `value` contains: the longest
    stretch of it written verbatim, in each spelling encoders give it."""
    runs = _verbatim_runs(value)
    if not runs:
        return None
    run = max(runs, key=len)
    found = {run.encode()}
    if not run.isascii():
        # Encoders that write ASCII only (Python's json, Jackson) escape the rest as \uXXXX,
        # in lower or upper case hexadecimal; a line may hold any of these spellings.
        escaped = json.dumps(run)[1:-1]
        found.add(escaped.encode())
        upper = _UPPER_ESCAPES.sub(lambda match: "\\u" + match.group()[2:].upper(), escaped)
        found.add(upper.encode())
    return frozenset(found)


#: Characters of the JSON text of a non-string value (`text_of`) that the line may spell
#: otherwise: separators (`{"a": 1}` against the compact `{"a":1}`) and number spellings.
_STRUCTURE = frozenset("{}[]:,")
_NUMERIC = frozenset("0123456789.eE+-")


def _regex_literals(condition: Condition, *, any_value: bool) -> list[frozenset[bytes] | None]:
    """Literals from the strings every text a `regex:` condition matches contains.

    The message and the logger are strings, written in the line as they are (but for escapes,
    which `_spellings` stops at); a field's value may be a number or an object, whose JSON text
    (what the regex searches) the line may spell differently, so for a field (`any_value`) only
    a string that cannot come from a number or the separators of an object's text is used.
    """
    if condition.regex is None:
        return []
    out: list[frozenset[bytes] | None] = []
    for strings in required_strings(condition.regex):
        found: set[bytes] = set()
        for string in strings:
            if any_value and (not _STRUCTURE.isdisjoint(string) or set(string) <= _NUMERIC):
                break
            spellings = _spellings(string)
            if spellings is None:
                break
            found |= spellings
        else:
            out.append(frozenset(found))
    return out


def _compile_captures(match: Match) -> Callable[[Record], dict[str, str]] | None:
    """What the named groups of the match's `regex:` conditions capture on a matched line.

    Run once per matched line (a second search of the values the match searched), never on the
    lines that fail the match. A group that did not take part in the match is left out, so a
    template naming it misses as for an absent field.
    """
    extractors: list[tuple[Callable[[Record], Any], Callable[[str], dict[str, str]]]] = []
    conditions: list[tuple[Callable[[Record], Any], Condition | None]] = [
        (_attribute("message"), match.message),
        (_attribute("logger"), match.logger),
    ]
    conditions.extend(
        (_field_value(path_of(name)), condition) for name, condition in match.fields.items()
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
            if value is not _ABSENT:
                found.update(captures(text_of(value)))
        return found

    return capture
