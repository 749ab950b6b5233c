"""Templates rendered against a decoded line: field values, the line's own attributes, the
transition's `{from}` and `{to}`, and filters."""

from __future__ import annotations

from typing import Any

from sidecar.core.lines.records import Record, text_of
from sidecar.core.rules.checks import ABSENT
from sidecar.core.rules.paths import Path, format_path, lookup_path
from sidecar.core.rules.templates import ENV, MissingField, Template, apply_filters


def render(template: Template, record: Record, extra: dict[str, str] | None = None) -> str:
    """Render a template against a record, plus `extra` names (a transition's from and to).

    Raise `MissingField` when the line lacks a name the template reads.
    """
    constant = template.constant
    if constant is not None:
        return constant
    if template.filters is not None:
        return _render_filtered(template, record, extra)
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
                value = fields.get(path[0], ABSENT)  # type: ignore[arg-type]
                if value is ABSENT:
                    value = _lookup(record, path, extra)
            else:
                value = _lookup(record, path, extra)
            out.append(value if type(value) is str else text_of(value))
    return out[0] if len(out) == 1 else "".join(out)


def _render_filtered(template: Template, record: Record, extra: dict[str, str] | None) -> str:
    """`render` for a template with filters (`{stack|first_line}`): kept apart so that the
    templates without any render as fast as they did."""
    assert template.filters is not None
    out = []
    for (literal, path), names in zip(template.parts, template.filters, strict=True):
        out.append(literal)
        if path is not None:
            value = _lookup(record, path, extra)
            out.append(apply_filters(value if type(value) is str else text_of(value), names))
    return "".join(out)


def _lookup(record: Record, path: Path, extra: dict[str, str] | None) -> Any:
    if len(path) == 1 and isinstance(path[0], str):
        key = path[0]
        if extra is not None and key in extra:
            return extra[key]
        value = record.fields.get(key, ABSENT)
        if value is not ABSENT:
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
