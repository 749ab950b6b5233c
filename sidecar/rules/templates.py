"""Safe message templates: `{field}` and `{field.sub}` substitution and nothing else.

`str.format` would allow attribute access (`{x.__class__}`), indexing and format specs that can
allocate without bound (`{x:>999999999}`), so templates are parsed once with the standard
`string.Formatter` parser and rendered by plain concatenation of dictionary look-ups.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_PATH = re.compile(r"[A-Za-z_@][\w\-@]*(\.[\w\-@]+)*")
_PARSER = string.Formatter()


class TemplateError(ValueError):
    """A template that cannot be compiled; the message says which part is wrong."""


class MissingField(LookupError):
    """A template named a field the log line does not carry."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


@dataclass(frozen=True, slots=True)
class Template:
    """A compiled template: literal text and field paths in order."""

    source: str
    #: (literal, path): the literal comes first, then the value at path (None at the end).
    parts: tuple[tuple[str, tuple[str, ...] | None], ...]

    #: The rendered text when the template reads no field, so rendering it costs nothing.
    constant: str | None = None

    @property
    def fields(self) -> tuple[str, ...]:
        """The dotted names of every field the template reads."""
        return tuple(".".join(path) for _, path in self.parts if path is not None)


def compile_template(source: str) -> Template:
    """Parse `source` once; raise `TemplateError` on anything but plain field references."""
    try:
        parsed = list(_PARSER.parse(source))
    except ValueError as error:
        raise TemplateError(f"invalid template {source!r}: {error}") from error
    parts: list[tuple[str, tuple[str, ...] | None]] = []
    for literal, field, spec, conversion in parsed:
        if field is None:
            parts.append((literal, None))
            continue
        if conversion or spec:
            raise TemplateError(
                f"invalid template {source!r}: {{{field}}} may not have a conversion or "
                "format spec; templates only substitute values"
            )
        if not _PATH.fullmatch(field):
            raise TemplateError(
                f"invalid template {source!r}: {{{field}}} is not a field name "
                "(letters, digits, '_', '-' and '.' between nested names)"
            )
        parts.append((literal, tuple(field.split("."))))
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
    parts: list[tuple[str, tuple[str, ...] | None]] = []
    pending = ""
    for literal, path in template.parts:
        pending += literal
        if path is not None and len(path) == 2 and path[0] == ENV and path[1] in env:
            pending += env[path[1]]
            continue
        parts.append((pending, path))
        pending = ""
    if pending or not parts:
        parts.append((pending, None))
    constant = (
        "".join(literal for literal, _ in parts) if all(p is None for _, p in parts) else None
    )
    return Template(template.source, tuple(parts), constant)


def lookup_path(data: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """Follow dictionary keys only (never attributes); raise `MissingField` when absent.

    A dotted name is first tried as one key, since logfmt and klog keys may contain dots.
    """
    if len(path) > 1:
        joined = ".".join(path)
        if joined in data:
            return data[joined]
    value: Any = data
    for key in path:
        if type(value) is not dict or key not in value:
            raise MissingField(".".join(path))
        value = value[key]
    return value
