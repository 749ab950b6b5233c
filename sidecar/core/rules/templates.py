"""Safe message templates: `{field}` and `{field.sub}` substitution and nothing else.

A field is named by a path (`sidecar.core.rules.paths`): `{a.b}`, `{a["b.c"]}`, `{a[0]}`,
`{conditions[type=Ready].reason}`; paths follow the decoded line's data only.

A value may go through filters, named after a `|`: `{stack|first_line}`, `{to|camel}`. They are
a fixed set of plain text functions (`FILTERS`), each linear in the value, never code: the part of
a value a template needs (the first line of a multi-line value) or the form an Event reason needs
(UpperCamelCase).

`str.format` would allow attribute access (`{x.__class__}`), indexing and format specs that can
allocate without bound (`{x:>999999999}`), so templates are parsed once with the standard
`string.Formatter` parser and rendered by plain concatenation of dictionary look-ups.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping
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
    "FILTERS",
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
    #: Per part, the filters its value goes through, in order; None when no part has any
    #: (every template written before filters existed), so rendering those costs nothing more.
    filters: tuple[tuple[str, ...], ...] | None = None

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
    filters: list[tuple[str, ...]] = []
    for literal, field, spec, conversion in parsed:
        if field is None:
            parts.append((literal, None))
            filters.append(())
            continue
        if conversion or spec:
            raise TemplateError(
                f"invalid template {source!r}: {{{field}}} may not have a conversion or "
                "format spec; templates only substitute values"
            )
        named, names = _split_filters(field, source)
        try:
            path = parse_path(named)
        except PathError:
            raise TemplateError(
                f"invalid template {source!r}: {{{named}}} is not a field name ({SYNTAX})"
            ) from None
        parts.append((literal, path))
        filters.append(names)
    constant = (
        "".join(literal for literal, _ in parts) if all(p is None for _, p in parts) else None
    )
    return Template(source, tuple(parts), constant, tuple(filters) if any(filters) else None)


def first_line(text: str) -> str:
    """The first line of a multi-line value (a stack trace, klog's `key=<` value), without
    its line break; the whole value when it has one line."""
    return text.partition("\n")[0].rstrip("\r")


_WORDS = re.compile(r"[A-Za-z0-9]+")


def camel(text: str) -> str:
    """`text` as one UpperCamelCase word, the form of an Event reason: `in_progress` and
    `in progress` give `InProgress`; `CrashLoopBackOff` stays as it is."""
    return "".join(word[:1].upper() + word[1:] for word in _WORDS.findall(text))


#: The filters a template may name after `|`, each a plain function of the value's text.
FILTERS: dict[str, Callable[[str], str]] = {
    "first_line": first_line,
    "camel": camel,
    "lower": str.lower,
    "upper": str.upper,
    "trim": str.strip,
}
_FILTER_NAME = re.compile(r"[a-z_]+")


def _split_filters(field: str, source: str) -> tuple[str, tuple[str, ...]]:
    """`stack|first_line|trim` -> (`stack`, (`first_line`, `trim`)). A `|` inside a path
    (`a[k="x|y"]`) is left to the path: only known filter names after the last `]` split."""
    names: list[str] = []
    while "|" in field:
        head, _, name = field.rpartition("|")
        if not _FILTER_NAME.fullmatch(name) or "]" in name:
            break
        if name not in FILTERS:
            raise TemplateError(
                f"invalid template {source!r}: {name!r} is not a filter; filters are "
                + ", ".join(FILTERS)
            )
        names.insert(0, name)
        field = head
    return field, tuple(names)


def apply_filters(text: str, names: tuple[str, ...]) -> str:
    """`text` through the filters named, in order."""
    for name in names:
        text = FILTERS[name](text)
    return text


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
    filters: list[tuple[str, ...]] = []
    pending = ""
    for number, (literal, path) in enumerate(template.parts):
        names = template.filters[number] if template.filters is not None else ()
        pending += literal
        if path is not None and len(path) == 2 and path[0] == ENV:
            name = path[1]
            if isinstance(name, str) and name in env:
                pending += apply_filters(env[name], names)
                continue
        parts.append((pending, path))
        filters.append(names)
        pending = ""
    if pending or not parts:
        parts.append((pending, None))
        filters.append(())
    constant = (
        "".join(literal for literal, _ in parts) if all(p is None for _, p in parts) else None
    )
    return Template(
        template.source, tuple(parts), constant, tuple(filters) if any(filters) else None
    )
