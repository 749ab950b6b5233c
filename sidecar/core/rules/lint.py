"""Warnings about rules files that are valid but probably do not do what their author means.

`event-sidecar check` prints these (and fails on them with `--strict`). Each names the file, the
line, the rule and what to do about it. Pure: the text and the environment in, problems out.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import yaml

from sidecar.core.lines.records import text_of
from sidecar.core.rules.formats import format_warnings
from sidecar.core.rules.load import LOADER, RulesProblem, _line_of, parse_rules
from sidecar.core.rules.paths import field_path as path_of
from sidecar.core.rules.paths import format_path
from sidecar.core.rules.regex import group_names
from sidecar.core.rules.schema import Condition, Match, Rule, RulesFile
from sidecar.core.rules.templates import ENV, compile_template

#: Built-in kinds that live in a namespace. Only these are warned about: whether a custom kind is
#: namespaced is known to the cluster, not to the rules file.
NAMESPACED_KINDS = frozenset(
    (
        "ConfigMap",
        "ControllerRevision",
        "CronJob",
        "DaemonSet",
        "Deployment",
        "Endpoints",
        "EndpointSlice",
        "HorizontalPodAutoscaler",
        "Ingress",
        "Job",
        "Lease",
        "LimitRange",
        "NetworkPolicy",
        "PersistentVolumeClaim",
        "Pod",
        "PodDisruptionBudget",
        "ReplicaSet",
        "ReplicationController",
        "ResourceQuota",
        "Role",
        "RoleBinding",
        "Secret",
        "Service",
        "ServiceAccount",
        "StatefulSet",
    )
)

Location = tuple[str | int, ...]


def lint_rules(text: str, filename: str, env: Mapping[str, str]) -> list[RulesProblem]:
    """Warnings for a rules file, in line order; raise `RulesError` if the file is invalid."""
    parsed = parse_rules(text, filename)
    node = yaml.compose(text, Loader=LOADER)
    assert node is not None  # parse_rules refuses an empty file
    problems = [
        RulesProblem(filename, _line_of(node, ("rules", index, *where)), rule.name, message)
        for index, rule, where, message in _warnings(parsed, env)
    ]
    problems += [
        RulesProblem(filename, _line_of(node, where), None, message)
        for where, message in format_warnings(parsed.formats)
    ]
    return sorted(problems, key=lambda problem: problem.line)


def _warnings(
    parsed: RulesFile, env: Mapping[str, str]
) -> Iterator[tuple[int, Rule, Location, str]]:
    rules = parsed.rules
    # A rule whose message is one value covers only rules with the very same condition: grouped
    # by it, each rule is compared with the few that can cover it, not all before it (1,000
    # rules were 500,000 comparisons, 10 s of `check`).
    by_message: dict[Condition, list[int]] = {}
    others: list[int] = []
    # Only rules rendering the same state and key can track the same state apart.
    by_state: dict[tuple[str, str], list[Rule]] = {}
    for index, rule in enumerate(rules):
        for where, message in _rule_warnings(rule, env):
            yield index, rule, where, message
        candidates = (
            others + by_message.get(rule.match.message, []) if rule.match.message else others
        )
        for earlier in (rules[i] for i in sorted(candidates)):
            if _covers(earlier.match, rule.match):
                yield (
                    index,
                    rule,
                    ("match",),
                    f"never matches: rule {earlier.name} comes first and matches every line "
                    "this one does (rules are tried in order; move this one up or narrow the "
                    "earlier one)",
                )
                break
        condition = rule.match.message
        if condition is not None and condition.equals is not None:
            by_message.setdefault(condition, []).append(index)
        else:
            others.append(index)
        tracking = rule.transition and (rule.transition.state, rule.transition.key)
        same_state = by_state.setdefault(tracking, []) if tracking else []
        for earlier in same_state:
            if _same_field_apart(earlier, rule):
                assert rule.transition is not None
                yield (
                    index,
                    rule,
                    ("transition",),
                    f"tracks the same state `{rule.transition.state}` of the same objects as "
                    f"rule {earlier.name}, but separately: each sees the other's changes as no "
                    "change. Give both the same `tracker:` to share the state, or use one rule "
                    "with `cases:`",
                )
                break
        same_state.append(rule)


def _rule_warnings(rule: Rule, env: Mapping[str, str]) -> Iterator[tuple[Location, str]]:
    match = rule.match
    conditions: list[tuple[Location, Condition]] = []
    if match.message is not None:
        conditions.append((("match", "message"), match.message))
    if match.logger is not None:
        conditions.append((("match", "logger"), match.logger))
    conditions.extend((("match", "fields", name), cond) for name, cond in match.fields.items())
    for number, case in enumerate(rule.cases):
        if case.when is not None:
            if case.when.to is not None:
                conditions.append((("cases", number, "when", "to"), case.when.to))
            if case.when.from_ is not None:
                conditions.append((("cases", number, "when", "from"), case.when.from_))
    for where, condition in conditions:
        for value in _compared_values(condition):
            if type(value) is not str:
                yield where, _non_string(".".join(str(step) for step in where), value)
    for number, case in enumerate(rule.cases[:-1]):
        if case.when is None:
            yield (
                ("cases", number + 1),
                f"cases after case {number + 1} are never used: it has no `when`, so it holds "
                "for every transition",
            )
            break
    spec = rule.object
    if (
        spec is not None
        and spec.ref is not None
        and spec.namespace is None
        and spec.kind in NAMESPACED_KINDS
    ):
        yield (
            ("object", "ref"),
            f"`ref: {spec.ref}`: a line whose {spec.ref} is a bare name (no `namespace/`) "
            f"names a {spec.kind} without a namespace, and its Event is rejected; add "
            '`namespace:` for bare names (e.g. `namespace: "{env.POD_NAMESPACE}"`)',
        )
    for where, source in _templates(rule):
        for field in compile_template(source).fields:
            name = field.split(".")
            if len(name) == 2 and name[0] == ENV and name[1] not in env:
                yield (
                    where,
                    f"`{{{field}}}`: {name[1]} is not set in this environment; the rule "
                    f"misses (field {field}) wherever it is not set",
                )
    yield from _never_given(rule)


#: Names a template reads from the record itself when the line has no such field.
_RECORD_NAMES = frozenset(("message", "msg", "level", "logger"))


#: Template locations where a transition's `{from}` and `{to}` are the states.
_STATE_NAMED = frozenset(("message", "reason", "first_message"))


def _never_given(rule: Rule) -> Iterator[tuple[Location, str]]:
    """Templates (messages, reasons, object, transition state and key) that read a field
    nothing can give: the rule matches only lines without it (`{exists: false}`) and no named
    group of its regexes captures it; a group only in a `not:` or a case's `when` (which
    capture nothing); `{from}`/`{to}` where they are not the states. A line may carry any
    other field, so a name merely unknown here is never warned about."""
    if not rule.emit:
        return  # its templates are never rendered
    yield from _groups_never_captured(rule)
    yield from _states_out_of_place(rule)
    match = rule.match
    absent = {
        format_path(path_of(name))
        for name, condition in match.fields.items()
        if condition.exists is False or (condition.not_ is not None and condition.not_.exists)
    }
    if not absent:
        return
    captured: set[str] = set()
    for condition in (match.message, match.logger, *match.fields.values()):
        if condition is not None and condition.regex is not None:
            captured.update(group_names(condition.regex))
    for where, source in _templates(rule):
        # In a transition rule's messages, {from} and {to} are the states, not fields.
        bound = (
            {"from", "to"} if rule.transition is not None and where[-1] in _STATE_NAMED else set()
        )
        for field in compile_template(source).fields:
            if field in absent and field not in captured | bound | _RECORD_NAMES:
                yield (
                    where,
                    f"`{{{field}}}`: the rule matches only lines without {field} (its match "
                    f"says `{field}: {{exists: false}}`) and no named group captures it, so "
                    f'every match misses (rule_misses_total{{field="{field}"}}) and makes no '
                    "Event",
                )


def _capturing(rule: Rule) -> set[str]:
    """The groups that capture: those of the match's own `regex:` conditions."""
    match = rule.match
    captured: set[str] = set()
    for condition in (match.message, match.logger, *match.fields.values()):
        if condition is not None and condition.regex is not None:
            captured.update(group_names(condition.regex))
    return captured


def _inner_groups(condition: Condition | None) -> set[str]:
    """The named groups of the regexes inside `condition` (under `not:` too)."""
    found: set[str] = set()
    while condition is not None:
        if condition.regex is not None:
            found.update(group_names(condition.regex))
        condition = condition.not_
    return found


def _groups_never_captured(rule: Rule) -> Iterator[tuple[Location, str]]:
    """A template naming a group written where groups capture nothing: inside `not:` (it
    holds where the regex does not match) or a case's `when` (it tests the states)."""
    match = rule.match
    silent: set[str] = set()
    for condition in (match.message, match.logger, *match.fields.values()):
        if condition is not None and condition.not_ is not None:
            silent |= _inner_groups(condition.not_)
    for case in rule.cases:
        if case.when is not None:
            silent |= _inner_groups(case.when.to) | _inner_groups(case.when.from_)
    silent -= _capturing(rule)
    if not silent:
        return
    states = {"from", "to"} if rule.transition is not None else set()
    for where, source in _templates(rule):
        for field in compile_template(source).fields:
            if field in silent and not (field in states and where[-1] in _STATE_NAMED):
                yield (
                    where,
                    f"`{{{field}}}`: the group {field} is in a `not:` or a case's `when`, "
                    "whose regexes capture nothing; unless the lines carry a field "
                    f'{field}, every match misses (rule_misses_total{{field="{field}"}}). '
                    "Capture it in the match's own regex",
                )


def _states_out_of_place(rule: Rule) -> Iterator[tuple[Location, str]]:
    """`{from}` and `{to}` are the states only in a transition rule's messages and reasons;
    elsewhere (the transition's own state and key, the object, a rule without a transition)
    they read fields of those names, which a line seldom has."""
    captured = _capturing(rule)
    for where, source in _templates(rule):
        if rule.transition is not None and where[-1] in _STATE_NAMED:
            continue
        for field in compile_template(source).fields:
            if field in ("from", "to") and field not in captured:
                place = (
                    "a rule without a transition"
                    if rule.transition is None
                    else "the transition and the object, which are rendered before there is "
                    "a change"
                )
                yield (
                    where,
                    f"`{{{field}}}` is the state a transition goes {field} only in messages "
                    f"and reasons, not in {place}; here it reads a field named {field}, and a "
                    "line without one misses",
                )


def _compared_values(condition: Condition) -> list[Any]:
    if condition.not_ is not None:
        return _compared_values(condition.not_)
    if condition.any is not None:
        return list(condition.any)
    if "equals" in condition.model_fields_set:
        return [condition.equals]
    return []


def _non_string(where: str, value: Any) -> str:
    if value is None:
        return (
            f"{where}: YAML reads this as null (no value), which matches only JSON null and "
            'the text null; did you mean `{exists: false}`, or the text "null" in quotes?'
        )
    if type(value) is bool:
        return (
            f"{where}: YAML reads this as the boolean {text_of(value)}, which matches JSON "
            f"{text_of(value)} and the text {text_of(value)}/{value!s}/"
            f"{text_of(value).upper()}; quote it to compare the text exactly"
        )
    return (
        f"{where}: YAML reads this as the number {value!r}, which matches any number or "
        "numeric text of that value (1, 1.0 and 1e0 are equal); quote it to compare the text "
        "exactly"
    )


def _templates(rule: Rule) -> Iterator[tuple[Location, str]]:
    yield ("message",), rule.message
    if "{" in rule.reason:
        yield ("reason",), rule.reason
    for number, case in enumerate(rule.cases):
        if case.message is not None:
            yield ("cases", number, "message"), case.message
        if case.reason is not None and "{" in case.reason:
            yield ("cases", number, "reason"), case.reason
    if rule.transition is not None:
        yield ("transition", "state"), rule.transition.state
        yield ("transition", "key"), rule.transition.key
        if rule.transition.first_message is not None:
            yield ("transition", "first_message"), rule.transition.first_message
    spec = rule.object
    if spec is not None:
        for key, written in (
            ("name", "name"),
            ("namespace", "namespace"),
            ("field_path", "fieldPath"),
            ("uid", "uid"),
            ("kind", "kind"),
            ("api_version", "apiVersion"),
        ):
            value = getattr(spec, key)
            if value is not None:
                yield ("object", written), value


def _covers(first: Match, later: Match) -> bool:
    """Whether every line `later` matches is matched by `first` too (judged by the text)."""
    if first.level is not None and (
        later.level is None or not set(later.level) <= set(first.level)
    ):
        return False
    pairs = [(first.message, later.message), (first.logger, later.logger)]
    pairs.extend((cond, later.fields.get(name)) for name, cond in first.fields.items())
    return all(_condition_covers(a, b) for a, b in pairs)


def _condition_covers(first: Condition | None, later: Condition | None) -> bool:
    if first is None:
        return True
    if later is None:
        return False
    if first == later:
        return True
    if first.not_ is not None or later.not_ is not None:
        # `not` holds on absent values too; judged equal only (above), never by its inside.
        return False
    if first.exists is True:
        # equals, any and regex all need the value to be there.
        return later.exists is not False
    if first.any is not None:
        choices = {text_of(choice) for choice in first.any}
        return bool(_compared_values(later)) and all(
            text_of(value) in choices for value in _compared_values(later)
        )
    return False


def _same_field_apart(first: Rule, later: Rule) -> bool:
    """Two transition rules on the same objects' same state, each with its own tracker."""
    a, b = first.transition, later.transition
    if a is None or b is None:
        return False
    return (
        (a.tracker or first.name) != (b.tracker or later.name)
        and a.state == b.state
        and a.key == b.key
        and first.object == later.object
    )
