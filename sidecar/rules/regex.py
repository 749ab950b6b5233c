"""Rule regular expressions in RE2, so that matching time is linear in the text, whatever the rule.

Python's `re` backtracks: the rule regex `(a+)+$` passed `check` and then took 104 s on a 31-byte
message, stalling the daemon (and its health answers) on one line. RE2, the engine of Go's
`regexp` and of Prometheus, never backtracks: a search costs at most (pattern size) x (text
length) steps, and the text is one line's value, itself bounded by the line length limit; that is
the per-line budget. RE2 refuses what needs backtracking (look-around, back-references), and
`check` reports it. `\\d`, `\\w` and `\\s` are ASCII in RE2, as in Go.
"""

from __future__ import annotations

from collections.abc import Callable

import re2

#: Bytes of memory RE2 may use per pattern for its automata (its default); past it RE2 falls back
#: to a slower automaton that is still linear, never to backtracking.
_MAX_MEM = 8 << 20


class RegexError(ValueError):
    """A rule regex RE2 cannot compile; the message says why."""


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # the error goes to the user through `check`, not to stderr
    options.max_mem = _MAX_MEM
    return options


def compile_search(pattern: str) -> Callable[[str], bool]:
    """A test that `pattern` occurs somewhere in a text (Python's `re.search` semantics).

    Raises:
        RegexError: RE2 cannot compile the pattern.
    """
    try:
        search = re2.compile(pattern, _options()).search
    except re2.error as error:
        reason = error.args[0] if error.args else error
        text = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
        raise RegexError(text) from error
    return lambda text: search(text) is not None
