"""Which transition state can outlive a rules reload.

A tracker's state is a map from objects to the last state its rules rendered. It stays meaningful
after a reload exactly when the new rules would have rendered the same states under the same keys:
precisely, when the new rules file has a tracker of the same name (the rule's name, or its
`transition.tracker`) and the set of (`transition.state`, `transition.key`) templates of the rules
that use it is the same, after `{env.NAME}` substitution. Everything else (match conditions,
object, `first`, `initial`, cases, reasons, messages) may change and the state carries over.
"""

from __future__ import annotations

from sidecar.rules.compile import RuleSet
from sidecar.rules.templates import Template

#: Per tracker, the (state, key) templates of the rules that use it.
Tracking = dict[str, frozenset[tuple[Template, Template]]]


def tracking_of(rules: RuleSet) -> Tracking:
    """How each tracker of `rules` renders its states and keys."""
    found: dict[str, set[tuple[Template, Template]]] = {}
    for rule in rules.rules:
        transition = rule.transition
        if transition is not None:
            found.setdefault(transition.tracker, set()).add((transition.state, transition.key))
    return {name: frozenset(how) for name, how in found.items()}


def changed_trackers(old: RuleSet, new: RuleSet) -> frozenset[str]:
    """The trackers of `old` whose state does not carry over to `new` (gone, or tracking
    differently)."""
    before, after = tracking_of(old), tracking_of(new)
    return frozenset(name for name, how in before.items() if after.get(name) != how)
