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
    transition: {key: "{resource}", state: "{hard}", first: skip}   # tracker: shares state
    cases:                           # optional, in order: type/reason/message by {to}/{from}
      - {when: {to: "0"}, type: Warning, reason: QuotaRemoved}
    type: Normal
    reason: QuotaExpanded
    message: "quota expanded: {resource} {from} -> {to}"
  - name: conflicts                  # emit: false consumes the line: no Event, no later rule
    match: {message: Reconciler error, fields: {error: {regex: "has been modified"}}}
    emit: false
```
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sidecar.core.lines.decode import LIFTED_KEYS
from sidecar.core.lines.records import LEVELS
from sidecar.core.rules.formats import FormatsSpec
from sidecar.core.rules.paths import PathError, field_path
from sidecar.core.rules.regex import RegexError, compile_search
from sidecar.core.rules.templates import TemplateError, compile_template

Level = Literal["debug", "info", "warning", "error", "fatal"]
assert set(LEVELS) == {"debug", "info", "warning", "error", "fatal"}

_REASON = re.compile(r"[A-Z][A-Za-z0-9]*")
_RULE_NAME = re.compile(r"[a-z0-9]([-a-z0-9_.]*[a-z0-9])?")
API_VERSION = re.compile(r"([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?v[0-9]+((alpha|beta)[0-9]+)?")
KIND = re.compile(r"[A-Z][A-Za-z0-9]*")
#: The reason of an `emit: false` rule that gives none: it is never written anywhere.
CONSUMED_REASON = "Consumed"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Scalar = str | int | float | bool | None


class Condition(_Strict):
    """How one value is tested. A bare scalar in the file means `{equals: scalar}`.

    `not` holds where the condition it wraps does not, an absent value included: `{not: Ready}`
    holds for a line without the field, as `Ready` does not.
    """

    equals: Scalar = None
    any: tuple[Scalar, ...] | None = Field(default=None, min_length=1)
    regex: str | None = None
    exists: bool | None = None
    not_: Condition | None = Field(default=None, alias="not")

    @model_validator(mode="before")
    @classmethod
    def _scalar_means_equals(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return data
        if isinstance(data, list):
            return {"any": data}
        return {"equals": data}

    @model_validator(mode="after")
    def _exactly_one(self) -> Condition:
        given = [name for name in ("any", "regex", "exists") if getattr(self, name) is not None]
        if self.not_ is not None:
            given.append("not")
        if "equals" in self.model_fields_set:
            given.append("equals")
        if len(given) != 1:
            raise ValueError(
                "a condition is a value, or exactly one of equals, any, regex, exists, not; "
                f"got {', '.join(given) or 'none'}"
            )
        return self

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                compile_search(value)
            except RegexError as error:
                raise ValueError(f"invalid regular expression {value!r}: {error}") from error
        return value


class Match(_Strict):
    """The conditions a line must meet; all must hold. At least one must be given."""

    message: Condition | None = Field(default=None, alias="msg")
    level: tuple[Level, ...] | None = None
    logger: Condition | None = None
    fields: dict[str, Condition] = Field(default_factory=dict)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("level", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("fields")
    @classmethod
    def _paths(cls, value: dict[str, Condition]) -> dict[str, Condition]:
        for name in value:
            _valid_path(name)
        return value

    @field_validator("fields")
    @classmethod
    def _not_lifted(cls, value: dict[str, Condition]) -> dict[str, Condition]:
        lifted = sorted(set(value) & LIFTED_KEYS)
        if lifted:
            raise ValueError(
                f"{', '.join(lifted)} never reach fields: the decoders read them as the line's "
                "time, level, message or logger; match them with message:, level: or logger:"
            )
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> Match:
        if self.message is None and self.level is None and self.logger is None and not self.fields:
            raise ValueError("match needs at least one of message, level, logger, fields")
        return self


class ObjectSpec(_Strict):
    """The involved object. `ref` names the field holding `{name, namespace}` or `ns/name`;
    otherwise `name` and `namespace` are templates. With neither, the field named after the kind
    is used, then controller-runtime's top-level `namespace` and `name`. A bare name in the ref
    field (no `ns/`) is in `namespace` when given, else a cluster-scoped object's name.

    `kind` and `apiVersion` are names or templates. Without `kind` (only with `ref`), the object
    is the reference's own: its kind, apiVersion and uid, as `Kind(ns/name)`, kube-rs's
    `Kind.version.group/name.ns` or `{apiVersion, kind, name, namespace, uid}` give them. `uid`
    (a template) is the object's uid from the line, which spares the sink its look-up."""

    api_version: str | None = Field(default=None, alias="apiVersion")
    kind: str | None = None
    uid: str | None = None
    ref: str | None = None
    name: str | None = None
    namespace: str | None = None
    field_path: str | None = Field(default=None, alias="fieldPath")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("api_version")
    @classmethod
    def _api_version(cls, value: str | None) -> str | None:
        if value is not None and "{" in value:
            return _valid_template(value)
        if value is not None and not API_VERSION.fullmatch(value):
            raise ValueError(f"{value!r} is not an apiVersion such as v1 or apps/v1")
        return value

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str | None) -> str | None:
        if value is not None and "{" in value:
            return _valid_template(value)
        if value is not None and not KIND.fullmatch(value):
            raise ValueError(f"{value!r} is not a Kind (UpperCamelCase, such as Pod)")
        return value

    @model_validator(mode="after")
    def _kind_or_ref(self) -> ObjectSpec:
        if self.kind is None and self.ref is None:
            raise ValueError(
                "give kind, or a ref whose values carry their kind (`Kind(ns/name)`, kube-rs's "
                "`Kind.version.group/name.ns`, `{kind, name, ...}`)"
            )
        return self

    @field_validator("name", "namespace", "field_path", "uid")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        return _valid_template(value)

    @field_validator("ref")
    @classmethod
    def _ref(cls, value: str | None) -> str | None:
        return None if value is None else _valid_path(value)

    @model_validator(mode="after")
    def _ref_or_name(self) -> ObjectSpec:
        if self.ref is not None and self.name is not None:
            raise ValueError(
                "give either ref or name, not both (with ref, namespace is the namespace of "
                "the bare names the ref field may hold)"
            )
        return self


class Transition(_Strict):
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

    @field_validator("state", "key")
    @classmethod
    def _template(cls, value: str) -> str:
        _valid_template(value)
        return value

    @field_validator("tracker")
    @classmethod
    def _tracker(cls, value: str | None) -> str | None:
        if value is not None and (not _RULE_NAME.fullmatch(value) or len(value) > 63):
            raise ValueError(
                f"{value!r} is not a tracker name (lowercase letters, digits, '-', '_', '.')"
            )
        return value


class When(_Strict):
    """Which transitions a case is for: conditions on the new state (`to`) and the old (`from`).

    Both take the forms of a `match` condition: a value, `{any: [...]}`, `{regex: ...}`.
    """

    to: Condition | None = None
    from_: Condition | None = Field(default=None, alias="from")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _not_empty(self) -> When:
        if self.to is None and self.from_ is None:
            raise ValueError("when needs to:, from: or both (leave when out for a catch-all case)")
        return self


class Case(_Strict):
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
        return _valid_template(value)


class Rule(_Strict):
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
        _valid_template(value)
        return value


class RulesFile(_Strict):
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
    if not _REASON.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a reason: Kubernetes reasons are UpperCamelCase "
            "(letters and digits, starting with a capital), like QuotaExpanded"
        )
    return value


def _valid_path(value: str) -> str:
    try:
        field_path(value)
    except PathError as error:
        raise ValueError(str(error)) from None
    return value


def _valid_template(value: str | None) -> str | None:
    if value is not None:
        try:
            compile_template(value)
        except TemplateError as error:
            raise ValueError(str(error)) from None
    return value
