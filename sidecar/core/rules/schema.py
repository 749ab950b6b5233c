"""The rules file's schema, validated by pydantic so that every mistake is reported precisely.

Every model forbids unknown keys: a misspelt key is an error, never silently ignored.

```yaml
component: quota-autoscaler          # source.component and reportingComponent of every Event
rules:
  - name: quota-expanded             # unique; the `rule` label of the match counter
    match:                           # all conditions must hold
      message: Reconciled quota      # equality, or {any: [...]}, {regex: ...}, {exists: bool},
                                     # {not: condition}; a regex's named groups become fields
      level: info                    # one level or a list
      logger: quota                  # optional, same forms as message
      fields: {resource: {any: [cpu, memory]}, hard: {exists: true}}   # keys are paths:
                                     # a.b, a["b.c"], list[0], conditions[type=Ready].reason
    object: auto                     # or {apiVersion, kind, ref} or {kind, namespace, name};
                                     # kind/apiVersion may be templates, uid: "{...}" optional,
                                     # {ref} alone takes the reference's own kind
    related: {kind: Pod, ref: pod}   # optional, events.k8s.io/v1 only: same forms as object
    action: Scaling                  # optional, events.k8s.io/v1 only (default: the reason)
    transition: {key: "{resource}", state: "{hard}", first: skip}   # tracker: shares state;
                                     # first: emit takes first_message: "is {to}"
    cases:                           # optional, in order: type/reason/message by {to}/{from}
      - {when: {to: "0"}, type: Warning, reason: QuotaRemoved}
    type: Normal
    reason: QuotaExpanded            # or a template: "{to|camel}", bounded (REASON_LIMIT)
    message: "quota expanded: {resource} {from} -> {to}"   # filters: {stack|first_line}
  - name: conflicts                  # emit: false consumes the line: no Event, no later rule
    match: {message: Reconciler error, fields: {error: {regex: "has been modified"}}}
    emit: false
```
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from sidecar.core.rules.conditions import Condition, Level, Match, Scalar, When
from sidecar.core.rules.formats import FormatsSpec
from sidecar.core.rules.objectspec import API_VERSION, KIND, ObjectSpec
from sidecar.core.rules.templates import Template, TemplateError, compile_template
from sidecar.core.rules.validators import Strict, valid_path, valid_template

__all__ = [
    "API_VERSION",
    "CONSUMED_REASON",
    "KIND",
    "REASON_LIMIT",
    "REASON_STAND_IN",
    "Case",
    "Condition",
    "Level",
    "Match",
    "ObjectSpec",
    "Rule",
    "RulesFile",
    "Scalar",
    "Transition",
    "When",
    "reason_stand_in",
]

_REASON = re.compile(r"[A-Z][A-Za-z0-9]*")
_RULE_NAME = re.compile(r"[a-z0-9]([-a-z0-9_.]*[a-z0-9])?")
#: The reason of an `emit: false` rule that gives none: it is never written anywhere.
CONSUMED_REASON = "Consumed"
#: The names these had when every model lived here.
_Strict = Strict
_valid_path = valid_path
_valid_template = valid_template


class Transition(Strict):
    """Emit only when the per-object state changes. `{from}` and `{to}` reach the message."""

    state: str
    #: Extra template added to the object's identity, e.g. "{resource}" to track each resource.
    key: str = ""
    #: What the first observation of an object does: remember the state silently (`skip`), or
    #: emit with `{from}` set to `initial`.
    first: Literal["skip", "emit"] = "skip"
    initial: str = "unknown"
    #: Rules naming the same tracker share one state per object and key (by default each rule
    #: keeps its own, under its name): one rule per outcome can then follow the same field.
    tracker: str | None = None
    #: The message of a first sighting (`first: emit`), given once for every state: "phase is
    #: {to}" where a change says "phase {from} -> {to}". A case's own message still wins.
    first_message: str | None = None

    @field_validator("state", "key")
    @classmethod
    def _template(cls, value: str) -> str:
        valid_template(value)
        return value

    @field_validator("first_message")
    @classmethod
    def _first_message(cls, value: str | None) -> str | None:
        return valid_template(value)

    @model_validator(mode="after")
    def _first_message_needs_emit(self) -> Transition:
        if self.first_message is not None and self.first != "emit":
            raise ValueError(
                "first_message is the message of a first sighting, which `first: skip` never "
                "reports; set `first: emit`"
            )
        return self

    @field_validator("tracker")
    @classmethod
    def _tracker(cls, value: str | None) -> str | None:
        if value is not None and (not _RULE_NAME.fullmatch(value) or len(value) > 63):
            raise ValueError(
                f"{value!r} is not a tracker name (lowercase letters, digits, '-', '_', '.')"
            )
        return value


class Case(Strict):
    """One outcome of a transition: what to emit when `when` holds, or `emit: false` for nothing.

    A case leaves out what it does not change: `type`, `reason` and `message` default to the
    rule's own, which are also the outcome when no case holds.
    """

    when: When | None = None
    emit: bool = True
    type: Literal["Normal", "Warning"] | None = None
    reason: str | None = Field(default=None, max_length=128)
    message: str | None = None

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str | None) -> str | None:
        return None if value is None else _valid_reason(value)

    @field_validator("message")
    @classmethod
    def _message(cls, value: str | None) -> str | None:
        return valid_template(value)


class Rule(Strict):
    name: str
    match: Match
    #: False: the rule consumes the lines it matches and emits nothing, so that no later rule
    #: sees them (an exception kept out of a broader rule below it). Such a rule needs no
    #: reason, object or message, and takes no transition.
    emit: bool = True
    #: None means `auto`: controller-runtime's controllerGroup/controllerKind and namespace/name.
    object: ObjectSpec | None = None
    #: events.k8s.io/v1's `related`: a second object the Event concerns (e.g. the Pod a change
    #: affected); same forms as `object`. Ignored when writing core/v1 Events.
    related: ObjectSpec | Literal["auto"] | None = None
    #: events.k8s.io/v1's `action` (what was done or failed); None takes the reason.
    action: str | None = Field(default=None, min_length=1, max_length=128)
    transition: Transition | None = None
    #: Ordered; the first whose `when` holds decides; the rule's type/reason/message are the
    #: default. Only for transition rules, since cases choose by `{from}` and `{to}`.
    cases: tuple[Case, ...] = ()
    type: Literal["Normal", "Warning"] = "Normal"
    reason: str = Field(max_length=128)
    message: str = "{message}"

    @model_validator(mode="before")
    @classmethod
    def _consuming_needs_no_reason(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("emit") is False and "reason" not in data:
            return {**data, "reason": CONSUMED_REASON}
        return data

    @model_validator(mode="after")
    def _consuming_has_no_transition(self) -> Rule:
        if not self.emit and self.transition is not None:
            raise ValueError(
                "emit: false consumes the line without an Event, so a transition would never "
                "be reported; to remember a state silently, use a case with emit: false"
            )
        return self

    @field_validator("object", mode="before")
    @classmethod
    def _auto(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value != "auto":
                raise ValueError(f"object is 'auto' or a mapping with kind, not {value!r}")
            return None
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _RULE_NAME.fullmatch(value) or len(value) > 63:
            raise ValueError(
                f"{value!r} is not a rule name (lowercase letters, digits, '-', '_', '.', "
                "at most 63 characters)"
            )
        return value

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        return _valid_reason(value)

    @model_validator(mode="after")
    def _cases_need_transition(self) -> Rule:
        if self.cases and self.transition is None:
            raise ValueError(
                "cases choose the Event by the state a transition goes from and to; "
                "add transition: {state: ...} or move the case's type/reason/message to the rule"
            )
        return self

    @field_validator("message")
    @classmethod
    def _message(cls, value: str) -> str:
        valid_template(value)
        return value


class RulesFile(Strict):
    component: str = Field(default="event-sidecar", min_length=1, max_length=128)
    #: Line formats declared for logs the built-in decoders do not read (`formats.py`).
    formats: FormatsSpec | None = None
    rules: tuple[Rule, ...]

    @field_validator("rules")
    @classmethod
    def _not_empty(cls, value: tuple[Rule, ...]) -> tuple[Rule, ...]:
        # Checked here rather than with min_length, which pydantic also reports (as "0 items
        # after validation") whenever any single rule is invalid.
        if not value:
            raise ValueError("the file has no rules; a sidecar without rules emits nothing")
        return value


def _valid_reason(value: str) -> str:
    if "{" in value:
        return _valid_reason_template(value)
    if not _REASON.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a reason: Kubernetes reasons are UpperCamelCase "
            "(letters and digits, starting with a capital), like QuotaExpanded"
        )
    return value


#: What a reason template's values are replaced by when the rendered reason is not one (or one
#: too many: `REASON_LIMIT`): `Phase{to|camel}` gives `PhaseOther`.
REASON_STAND_IN = "Other"
#: Distinct reasons one rule may render from the line before the rest become the stand-in:
#: each is a series of `events_emitted_total{reason}` and an Event aggregation key.
REASON_LIMIT = 50


def reason_stand_in(template: Template) -> str:
    """The reason a template stands for when what it renders cannot be used."""
    return "".join(
        literal + (REASON_STAND_IN if path is not None else "") for literal, path in template.parts
    )


def _valid_reason_template(value: str) -> str:
    """A reason with values from the line (`{to|camel}`, `Phase{to|camel}`): its text around
    the values must make a reason whatever they are, checked with the stand-in."""
    try:
        template = compile_template(value)
    except TemplateError as error:
        raise ValueError(str(error)) from None
    if not _REASON.fullmatch(reason_stand_in(template)):
        raise ValueError(
            f"{value!r} cannot make a reason: the text around its values must leave an "
            "UpperCamelCase word (letters and digits, starting with a capital), like "
            '"{to|camel}" or "Phase{to|camel}"'
        )
    return value
