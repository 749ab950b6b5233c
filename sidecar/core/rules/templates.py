"""Safe message templates: `{field}` and `{field.sub}` substitution and nothing else.

A field is named by a path (`sidecar.core.rules.paths`): `{a.b}`, `{a["b.c"]}`, `{a[0]}`,
`{conditions[type=Ready].reason}`; paths follow the decoded line's data only.

`str.format` would allow attribute access (`{x.__class__}`), indexing and format specs that can
allocate without bound (`{x:>999999999}`), so templates are parsed once with the standard
`string.Formatter` parser and rendered by plain concatenation of dictionary look-ups.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass

from sidecar.core.rules.paths import (
    SYNTAX,
    MissingField,
    Path,
    PathError,
    format_path,
    lookup_path,
    parse_path,
)

__all__ = [
    "ENV",
    "MissingField",
    "Template",
    "TemplateError",
    "bind_env",
    "compile_template",
    "lookup_path",
]

_PARSER = string.Formatter()


class TemplateError(ValueError):
    """A template that cannot be compiled; the message says which part is wrong."""


@dataclass(frozen=True, slots=True)
class Template:
    """A compiled template: literal text and field paths in order."""

    source: str
    #: (literal, path): the literal comes first, then the value at path (None at the end).
    parts: tuple[tuple[str, Path | None], ...]

    #: The rendered text when the template reads no field, so rendering it costs nothing.
    constant: str | None = None

    @property
    def fields(self) -> tuple[str, ...]:
        """The paths of every field the template reads, as written (`a.b`, `a[0]`)."""
        return tuple(format_path(path) for _, path in self.parts if path is not None)


def compile_template(source: str) -> Template:
    """Parse `source` once; raise `TemplateError` on anything but plain field references."""
    try:
        parsed = list(_PARSER.parse(source))
    except ValueError as error:
        raise TemplateError(f"invalid template {source!r}: {error}") from error
    parts: list[tuple[str, Path | None]] = []
    for literal, field, spec, conversion in parsed:
        if field is None:
            parts.append((literal, None))
            continue
        if conversion or spec:
            raise TemplateError(
                f"invalid template {source!r}: {{{field}}} may not have a conversion or "
                "format spec; templates only substitute values"
            )
        try:
            path = parse_path(field)
        except PathError:
            raise TemplateError(
                f"invalid template {source!r}: {{{field}}} is not a field name ({SYNTAX})"
            ) from None
        parts.append((literal, path))
    constant = (
        "".join(literal for literal, _ in parts) if all(p is None for _, p in parts) else None
    )
    return Template(source, tuple(parts), constant)


#: The first name of `{env.NAME}`, a variable of the sidecar's environment (not a log field).
ENV = "env"


def bind_env(template: Template, env: Mapping[str, str]) -> Template:
    """Replace `{env.NAME}` by the variable's value, once, when the rules are loaded.

    An unset variable stays a reference, which fails to render (`MissingField("env.NAME")`) so
    that the rule's misses say what is missing rather than an Event naming the wrong object.
    """
    if template.constant is not None or not any(
        path is not None and len(path) == 2 and path[0] == ENV for _, path in template.parts
    ):
        return template
    parts: list[tuple[str, Path | None]] = []
    pending = ""
    for literal, path in template.parts:
        pending += literal
        if path is not None and len(path) == 2 and path[0] == ENV:
            name = path[1]
            if isinstance(name, str) and name in env:
                pending += env[name]
                continue
        parts.append((pending, path))
        pending = ""
    if pending or not parts:
        parts.append((pending, None))
    constant = (
        "".join(literal for literal, _ in parts) if all(p is None for _, p in parts) else None
    )
    return Template(template.source, tuple(parts), constant)
