"""Which transition state can outlive a rules reload or a restart.

A tracker's state is a map from objects to the last state its rules rendered. It stays meaningful
under other rules exactly when those would have rendered the same states under the same keys:
precisely, when they have a tracker of the same name (the rule's name, or its
`transition.tracker`) and the set of (`transition.state`, `transition.key`) templates of the rules
that use it is the same, after `{env.NAME}` substitution. Everything else (match conditions,
object, `first`, `initial`, cases, reasons, messages) may change and the state carries over.

That set is summed up as a digest per tracker (`meanings`), which the checkpoint stores beside
the states: a hot reload and a restart decide with the same comparison, so a restart under rules
that render a tracker's state differently drops that state, as a reload would, instead of
comparing new states with old ones of another kind (each a spurious Event).
"""

from __future__ import annotations

import hashlib

from sidecar.core.rules.compile import RuleSet
from sidecar.core.rules.templates import Template

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


def meanings(rules: RuleSet) -> dict[str, str]:
    """Per tracker of `rules`, a digest of how it renders its states and keys: equal digests
    mean the same tracking. Stable across processes (it goes into checkpoints): the templates'
    parsed parts, after `{env.NAME}` substitution, in a sorted text form."""
    return {
        name: hashlib.blake2b(
            "\0".join(sorted(_meaning(state, key) for state, key in how)).encode(),
            digest_size=8,
        ).hexdigest()
        for name, how in tracking_of(rules).items()
    }


def _meaning(state: Template, key: Template) -> str:
    """The text a (state, key) pair is digested as: its parts, and its filters when it has
    any (`{phase|lower}` tracks other states than `{phase}`); a pair without filters digests
    as it did before filters existed, so checkpoints keep their state."""
    if state.filters is None and key.filters is None:
        return repr((state.parts, key.parts))
    return repr((state.parts, state.filters, key.parts, key.filters))


def changed_trackers(old: RuleSet, new: RuleSet) -> frozenset[str]:
    """The trackers of `old` whose state does not carry over to `new` (gone, or tracking
    differently)."""
    before, after = meanings(old), meanings(new)
    return frozenset(name for name, meaning in before.items() if after.get(name) != meaning)
