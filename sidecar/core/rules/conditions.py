"""The conditions of the rules file: how one value is tested (`Condition`), what a line must
meet (`Match`), and which transitions a case is for (`When`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from sidecar.core.lines.decode import LIFTED_KEYS
from sidecar.core.lines.records import LEVELS
from sidecar.core.rules.regex import RegexError, compile_search
from sidecar.core.rules.validators import Strict, valid_path

Level = Literal["debug", "info", "warning", "error", "fatal"]
assert set(LEVELS) == {"debug", "info", "warning", "error", "fatal"}

Scalar = str | int | float | bool | None


class Condition(Strict):
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


class Match(Strict):
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
            valid_path(name)
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


class When(Strict):
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
