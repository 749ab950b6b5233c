"""Validation errors in the words of the rules file, not of the validation library.

Pydantic says "Extra inputs are not permitted" or "Field required"; the person fixing a rules file
needs to know which keys are allowed where, and what they probably meant.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

from sidecar.core.validation import error_path

_CONDITION_KEYS = ("equals", "any", "regex", "exists", "not")
#: The keys each mapping of a rules file accepts, by the name of the key that holds it.
_KEYS: dict[str, tuple[str, ...]] = {
    "": ("component", "rules"),
    "rule": ("name", "match", "object", "transition", "cases", "type", "reason", "message"),
    "match": ("message", "msg", "level", "logger", "fields"),
    "object": ("apiVersion", "kind", "ref", "name", "namespace", "fieldPath"),
    "transition": ("state", "key", "first", "initial", "tracker"),
    "case": ("when", "emit", "type", "reason", "message"),
    "when": ("to", "from"),
    "condition": _CONDITION_KEYS,
}


def describe(path: Sequence[Any], error_type: str, message: str) -> str:
    """One validation error as a sentence; `path` holds the keys within the rule (or file)."""
    steps = error_path(path)
    where = ".".join(steps)
    if error_type == "extra_forbidden" and steps:
        text = _unknown_key(steps)
    elif error_type == "missing" and steps:
        text = f"`{steps[-1]}` is required here"
        where = ".".join(steps[:-1])
    elif error_type in ("model_type", "dict_type", "model_attributes_type"):
        text = "should be a mapping (`key: value` pairs, or `{key: value}` on one line)"
    else:
        text = message.removeprefix("Value error, ")
    return f"{where}: {text}" if where else text


def _unknown_key(steps: list[str]) -> str:
    key, parents = steps[-1], steps[:-1]
    context = _context(parents)
    allowed = _KEYS[context]
    text = f"`{key}` is not a key of {_name(context)} (allowed: {', '.join(allowed)})"
    if context == "match" and key not in allowed:
        return f"{text}; did you mean `fields: {{{key}: ...}}`?"
    close = difflib.get_close_matches(key, allowed, n=1)
    if close:
        return f"{text}; did you mean `{close[0]}`?"
    return text


def _context(parents: list[str]) -> str:
    """Which kind of mapping the last of `parents` names (see `_KEYS`)."""
    if not parents:
        return "rule"
    last = parents[-1]
    before = parents[-2] if len(parents) > 1 else ""
    if last in ("message", "msg", "logger") and before == "match":
        return "condition"
    if before == "fields" or (before == "when" and last in ("to", "from")) or last == "not":
        return "condition"
    if last.isdigit() and before == "cases":
        return "case"
    if last in _KEYS and last not in ("", "rule", "case", "condition"):
        return last
    return "rule"


def _name(context: str) -> str:
    return {
        "rule": "a rule",
        "case": "a case",
        "condition": "a condition",
    }.get(context, f"`{context}`")


def describe_file_level(location: Sequence[Any], error_type: str, message: str) -> str:
    """An error outside any rule (the file's top level)."""
    if error_type == "extra_forbidden" and location:
        key = str(location[-1])
        allowed = _KEYS[""]
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f"; did you mean `{close[0]}`?" if close else ""
        return f"`{key}` is not a top-level key (allowed: {', '.join(allowed)}){hint}"
    return describe(location, error_type, message)
