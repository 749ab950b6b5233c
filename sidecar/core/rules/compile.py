"""Validated rules compiled into matchers that run on every decoded line.

Everything that can be done once is done here: regular expressions compiled, templates parsed,
comparison values turned into the text they are compared as, and the byte literals that a line must
contain for any rule to match derived for the pre-filter (see `sidecar.core.lines.scan`). By
concern: `checks` (the match), `prefilter` (its literals), `objects` (the object's resolver),
`rendering` (templates against a line); this module puts them together per rule.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sidecar.core.labels import LabelGuard
from sidecar.core.lines.formats.declared import BUILTIN_ONLY, Formats
from sidecar.core.lines.records import Record
from sidecar.core.rules.checks import (
    ABSENT,
    Check,
    Test,
    combine,
    compile_captures_of,
    compile_checks,
    compile_test,
    describe,
    is_absent,
)
from sidecar.core.rules.formats import compile_formats
from sidecar.core.rules.objects import TemplateCompiler, compile_object
from sidecar.core.rules.prefilter import literals_of
from sidecar.core.rules.rendering import render
from sidecar.core.rules.schema import (
    REASON_LIMIT,
    Case,
    Rule,
    RulesFile,
    Transition,
    reason_stand_in,
)
from sidecar.core.rules.templates import Template, bind_env
from sidecar.core.rules.templates import compile_template as _parse_template
from sidecar.model import ObjectTarget

__all__ = [
    "ABSENT",
    "Check",
    "CompiledCase",
    "CompiledRule",
    "CompiledTransition",
    "Outcome",
    "RuleSet",
    "Test",
    "compile_rules",
    "describe",
    "is_absent",
    "render",
]

#: What a reason rendered from a line must be (as the schema's fixed reasons): UpperCamelCase.
_REASON_TEXT = re.compile(r"[A-Z][A-Za-z0-9]*")
MAX_REASON = 128


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
    #: The reason as a template (`{to|camel}`), rendered per Event (`CompiledRule.reason_of`);
    #: None: `reason` is the reason.
    reason_template: Template | None = None


@dataclass(frozen=True, slots=True)
class CompiledCase:
    to: Test | None
    from_: Test | None
    outcome: Outcome
    #: The outcome of a first sighting: the transition's `first_message` unless the case gives
    #: its own message.
    first: Outcome | None = None

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
    #: The rule's reason as a template (`{code|camel}`); None: `reason` is the reason.
    reason_template: Template | None = None
    #: The rule's own outcome on a first sighting, when its transition has a `first_message`.
    first_outcome: Outcome | None = None
    #: The reasons rendered from lines so far, at most `REASON_LIMIT` (None: no template).
    reasons: LabelGuard | None = None

    def first_failure(self, record: Record) -> Check | None:
        """The first condition `record` fails (None: the rule matches).

        It runs the very checks `matches` runs, in the same order, so what `explain` says about
        a line is what `run` did with it.
        """
        for check in self.checks:
            if not check.test(record):
                return check
        return None

    def choose(self, before: str, after: str, first: bool = False) -> tuple[int | None, Outcome]:
        """The first case that holds for the transition `before -> after` (its index, 0-based,
        for `explain`), else the rule's own outcome (index None). `first`: a first sighting,
        whose message is the transition's `first_message` where a case gives none."""
        for index, case in enumerate(self.cases):
            if case.holds(before, after):
                if first and case.first is not None:
                    return index, case.first
                return index, case.outcome
        if first and self.first_outcome is not None:
            return None, self.first_outcome
        return None, Outcome(True, self.type, self.reason, self.message, self.reason_template)

    def reason_of(
        self, template: Template, record: Record, extra: dict[str, str] | None = None
    ) -> tuple[str, bool]:
        """A reason rendered from the line, and whether it was replaced: itself when it is a
        reason and one of the rule's first `REASON_LIMIT`, else the template's stand-in
        (`Phase{to}`: `PhaseOther`), so no line can make an invalid Event or an unbounded
        number of reasons.

        Raises:
            MissingField: the line lacks a value the template reads.
        """
        reason = render(template, record, extra)
        guard = self.reasons
        if (
            len(reason) <= MAX_REASON
            and _REASON_TEXT.fullmatch(reason)
            and guard is not None
            and guard.admit(self.name, reason) == reason
        ):
            return reason, False
        return reason_stand_in(template), True


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


def _compile_rule(rule: Rule, compile_template: TemplateCompiler) -> CompiledRule:
    message = compile_template(rule.message)
    checks = compile_checks(rule.match)
    first_message = (
        compile_template(rule.transition.first_message)
        if rule.transition is not None and rule.transition.first_message is not None
        else None
    )
    reason_template = _reason_template(rule.reason, compile_template)
    templated = reason_template is not None or any(
        case.reason is not None and "{" in case.reason for case in rule.cases
    )
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
        cases=tuple(
            _compile_case(case, rule, message, first_message, compile_template)
            for case in rule.cases
        ),
        reason_template=reason_template,
        first_outcome=(
            None
            if first_message is None
            else Outcome(True, rule.type, rule.reason, first_message, reason_template)
        ),
        reasons=LabelGuard(REASON_LIMIT) if templated else None,
        matches=combine(checks),
        resolve_object=compile_object(rule.object, compile_template),
        literals=literals_of(rule.match),
        captures=compile_captures_of(rule.match),
        emit=rule.emit,
        checks=checks,
        action=rule.action or "",
        resolve_related=(
            None
            if rule.related is None
            else compile_object(None if rule.related == "auto" else rule.related, compile_template)
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
    case: Case,
    rule: Rule,
    message: Template,
    first_message: Template | None,
    compile_template: TemplateCompiler,
) -> CompiledCase:
    when = case.when
    reason = case.reason or rule.reason
    reason_template = _reason_template(reason, compile_template)
    outcome = Outcome(
        case.emit,
        case.type or rule.type,
        reason,
        compile_template(case.message) if case.message is not None else message,
        reason_template,
    )
    first = None
    if first_message is not None and case.message is None:
        first = Outcome(case.emit, outcome.type, reason, first_message, reason_template)
    if when is None:
        return CompiledCase(None, None, outcome, first)
    to = compile_test(when.to) if when.to is not None else None
    from_ = compile_test(when.from_) if when.from_ is not None else None
    return CompiledCase(to, from_, outcome, first)


def _reason_template(reason: str, compile_template: TemplateCompiler) -> Template | None:
    """The reason's template when it reads values (`{to|camel}`), else None."""
    return compile_template(reason) if "{" in reason else None
