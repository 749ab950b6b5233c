"""What the rules file's models share: strict models, and checks of paths and templates."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from sidecar.core.rules.paths import PathError, field_path
from sidecar.core.rules.templates import TemplateError, compile_template


class Strict(BaseModel):
    """Every model forbids unknown keys: a misspelt key is an error, never silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def valid_path(value: str) -> str:
    try:
        field_path(value)
    except PathError as error:
        raise ValueError(str(error)) from None
    return value


def valid_template(value: str | None) -> str | None:
    if value is not None:
        try:
            compile_template(value)
        except TemplateError as error:
            raise ValueError(str(error)) from None
    return value
