"""The byte strings a rule's matching lines must contain, for the pre-filter.

`sidecar.core.lines.scan` searches a block's raw bytes for them before any line is decoded; a
line holding none of a rule's literals cannot match it. A literal is used only where it is exact:
the text as every encoder controllers use writes it (or each of its spellings).
"""

from __future__ import annotations

import json
import re

from sidecar.core.rules.conditions import Condition, Match
from sidecar.core.rules.regex import required_strings

#: Characters no log encoder escapes (JSON, Go's %q, logfmt): a literal made of these appears
#: verbatim in the raw line, so searching the bytes for it is exact. `<`, `>` and `&` are left
#: out because Go's encoding/json escapes them by default.
_VERBATIM = re.compile(r"[A-Za-z0-9 _.,:;!?/()\[\]{}=+*#%@$^|~`'-]+")
_UPPER_ESCAPES = re.compile(r"\\u[0-9a-f]{4}")
#: Non-ASCII characters that JSON, Go's %q and logfmt still escape; every other printable one is
#: written as its UTF-8 bytes (or as a \u escape by ASCII-only encoders).
_ESCAPED_ANYWAY = frozenset("\u2028\u2029")


def _verbatim_runs(value: str) -> list[str]:
    """The longest stretches of `value` a log line holds as they are (see `_VERBATIM`)."""
    runs: list[str] = []
    current: list[str] = []
    for char in value:
        if (
            _VERBATIM.fullmatch(char)
            if char.isascii()
            else char.isprintable() and char not in _ESCAPED_ANYWAY
        ):
            current.append(char)
        elif current:
            runs.append("".join(current))
            current = []
    if current:
        runs.append("".join(current))
    return runs


def literals_of(match: Match) -> frozenset[bytes] | None:
    """The byte strings one of which every line this rule matches must contain, if derivable."""
    candidates: list[frozenset[bytes] | None] = []
    if match.message is not None:
        candidates.append(_condition_literals(match.message))
        candidates.extend(_regex_literals(match.message, any_value=False))
    if match.logger is not None:
        candidates.extend(_regex_literals(match.logger, any_value=False))
    for condition in match.fields.values():
        candidates.append(_condition_literals(condition))
        candidates.extend(_regex_literals(condition, any_value=True))
    usable = [found for found in candidates if found is not None]
    if not usable:
        return None
    # The set whose shortest literal is longest is the most selective.
    return max(usable, key=lambda found: min(len(literal) for literal in found))


def _condition_literals(condition: Condition) -> frozenset[bytes] | None:
    if condition.any is not None:
        values = list(condition.any)
    elif "equals" in condition.model_fields_set and condition.regex is None:
        values = [condition.equals]
    else:
        return None
    found: set[bytes] = set()
    for value in values:
        # Only strings are written verbatim: a number may be spelt 1e-7 or 0.0000001, and JSON
        # text inside a value may have spaces the compact spelling lacks.
        if type(value) is not str or value.startswith(("{", "[")):
            return None
        spellings = _spellings(value)
        if spellings is None:
            return None
        found |= spellings
    return frozenset(found)


def _spellings(value: str) -> frozenset[bytes] | None:
    """The byte strings one of which a line holding the text `value` contains: the longest
    stretch of it written verbatim, in each spelling encoders give it."""
    runs = _verbatim_runs(value)
    if not runs:
        return None
    run = max(runs, key=len)
    found = {run.encode()}
    if not run.isascii():
        # Encoders that write ASCII only (Python's json, Jackson) escape the rest as \uXXXX,
        # in lower or upper case hexadecimal; a line may hold any of these spellings.
        escaped = json.dumps(run)[1:-1]
        found.add(escaped.encode())
        upper = _UPPER_ESCAPES.sub(lambda match: "\\u" + match.group()[2:].upper(), escaped)
        found.add(upper.encode())
    return frozenset(found)


#: Characters of the JSON text of a non-string value (`text_of`) that the line may spell
#: otherwise: separators (`{"a": 1}` against the compact `{"a":1}`) and number spellings.
_STRUCTURE = frozenset("{}[]:,")
_NUMERIC = frozenset("0123456789.eE+-")


def _regex_literals(condition: Condition, *, any_value: bool) -> list[frozenset[bytes] | None]:
    """Literals from the strings every text a `regex:` condition matches contains.

    The message and the logger are strings, written in the line as they are (but for escapes,
    which `_spellings` stops at); a field's value may be a number or an object, whose JSON text
    (what the regex searches) the line may spell differently, so for a field (`any_value`) only
    a string that cannot come from a number or the separators of an object's text is used.
    """
    if condition.regex is None:
        return []
    out: list[frozenset[bytes] | None] = []
    for strings in required_strings(condition.regex):
        found: set[bytes] = set()
        for string in strings:
            if any_value and (not _STRUCTURE.isdisjoint(string) or set(string) <= _NUMERIC):
                break
            spellings = _spellings(string)
            if spellings is None:
                break
            found |= spellings
        else:
            out.append(frozenset(found))
    return out
