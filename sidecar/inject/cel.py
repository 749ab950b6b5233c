"""CEL literals for the MutatingAdmissionPolicy (`sidecar.inject.policy`): JSON-like values, with
`Cel` parts written into the expression as they are."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


class Cel(str):
    """A CEL expression, written into the rendered expression as it is (not as a string)."""


def render(value: Any) -> str:
    """`value` (JSON-like, with :class:`Cel` parts) as a CEL literal."""
    if isinstance(value, Cel):
        return str(value)
    if isinstance(value, Mapping):
        plain = all(isinstance(v, str) and not isinstance(v, Cel) for v in value.values())
        cast = render if plain else dyn
        return "{" + ", ".join(f"{render(k)}: {cast(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(render(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | str):
        return json.dumps(value, ensure_ascii=False)
    raise TypeError(f"cannot render {type(value).__name__} as CEL")


def dyn(value: Any) -> str:
    """`value` rendered as a map value of type `dyn`: CEL types a map literal by its first entry,
    so a map whose values differ in type (a list beside a string, say) declares them all `dyn`."""
    return f"dyn({render(value)})"
