"""Rule regular expressions in RE2, so that matching time is linear in the text, whatever the rule.

Python's `re` backtracks: the rule regex `(a+)+$` passed `check` and then took 104 s on a 31-byte
message, stalling the daemon (and its health answers) on one line. RE2, the engine of Go's
`regexp` and of Prometheus, never backtracks: a search costs at most (pattern size) x (text
length) steps, and the text is one line's value, itself bounded by the line length limit; that is
the per-line budget. RE2 refuses what needs backtracking (look-around, back-references), and
`check` reports it. `\\d`, `\\w` and `\\s` are ASCII in RE2, as in Go.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from re import _constants, _parser  # type: ignore[attr-defined]
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import re2

#: Bytes of memory RE2 may use per pattern for its automata (its default); past it RE2 falls back
#: to a slower automaton that is still linear, never to backtracking.
_MAX_MEM = 8 << 20


class RegexError(ValueError):
    """A rule regex RE2 cannot compile; the message says why."""


def _re2() -> Any:
    """google-re2, imported by the first rule with a regex: 2.7 MiB of resident memory that a
    daemon whose rules have none does not pay (BENCHMARKS.md, memory floor)."""
    import re2  # noqa: PLC0415

    return re2


def _options() -> re2.Options:
    options: re2.Options = _re2().Options()
    options.log_errors = False  # the error goes to the user through `check`, not to stderr
    options.max_mem = _MAX_MEM
    return options


def compile_regex(pattern: str) -> Any:
    """`pattern` compiled by RE2 with the rules' options (bounded memory, errors not logged).
    The pattern must compile (`compile_search` says why one does not)."""
    return _re2().compile(pattern, _options())


def compile_search(pattern: str) -> Callable[[str], bool]:
    """A test that `pattern` occurs somewhere in a text (Python's `re.search` semantics).

    Raises:
        RegexError: RE2 cannot compile the pattern.
    """
    try:
        search = _re2().compile(pattern, _options()).search
    except _re2().error as error:
        reason = error.args[0] if error.args else error
        text = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
        raise RegexError(text) from error
    return lambda text: search(text) is not None


def compile_captures(pattern: str) -> Callable[[str], dict[str, str]] | None:
    """The named groups `pattern` captures in a text (those that took part in the match), or
    None when the pattern has no named group. The pattern must compile (`compile_search`)."""
    compiled = compile_regex(pattern)
    if not compiled.groupindex:
        return None
    search = compiled.search

    def captures(text: str) -> dict[str, str]:
        found = search(text)
        if found is None:
            return {}
        return {name: value for name, value in found.groupdict().items() if value is not None}

    return captures


def group_names(pattern: str) -> tuple[str, ...]:
    """The names of the pattern's named groups, in order; () when it does not compile."""
    try:
        compiled = _re2().compile(pattern, _options())
    except _re2().error:
        return ()
    return tuple(sorted(compiled.groupindex, key=compiled.groupindex.__getitem__))


def required_strings(pattern: str) -> list[frozenset[str]]:
    """Sets of strings such that every text `pattern` finds a match in contains one string of
    each set; [] when none is certain (for the pre-filter: see `sidecar.core.rules.compile`).

    RE2 has no Python interface to its parse tree, so Python's own regex parser reads the
    pattern. The two agree on what this looks at (literal characters, groups, repeats,
    alternations); where they do not, Python refuses the pattern (`\\pL`, `\\Q..\\E`, `\\z`,
    `(?<name>)`) and no string is derived, or reads a repeat RE2 takes literally (`a{,2}`),
    which only makes the strings shorter. POSIX classes (`[[:alpha:]]`) Python would read as a
    set followed by a literal `]`, so a pattern with `[:` derives nothing; nor does one that is
    case-insensitive anywhere.
    """
    if "[:" in pattern:
        return []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed: Any = _parser.parse(pattern)
    except (re.error, RecursionError, OverflowError, ValueError):
        return []
    if parsed.state.flags & re.IGNORECASE:
        return []
    return [strings for strings in _sequence(list(parsed)) if strings and all(strings)]


def _sequence(items: list[Any]) -> list[frozenset[str]]:
    """The sets of strings a match of `items`, in order, must contain one of each of."""
    found: list[frozenset[str]] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            found.append(frozenset(("".join(run),)))
            run.clear()

    for op, argument in items:
        if op is _constants.LITERAL:
            run.append(chr(argument))
            continue
        flush()
        if op is _constants.SUBPATTERN:
            _group, add_flags, _del_flags, inner = argument
            if not add_flags & re.IGNORECASE:
                found.extend(_sequence(list(inner)))
        elif op in (_constants.MAX_REPEAT, _constants.MIN_REPEAT, _constants.POSSESSIVE_REPEAT):
            least, _most, inner = argument
            if least >= 1:
                found.extend(_sequence(list(inner)))
        elif op is _constants.BRANCH:
            _, branches = argument
            alternatives: set[str] = set()
            for branch in branches:
                best = _best(_sequence(list(branch)))
                if best is None:
                    break
                alternatives |= best
            else:
                found.append(frozenset(alternatives))
    flush()
    return found


def _best(candidates: list[frozenset[str]]) -> frozenset[str] | None:
    """The set whose shortest string is longest: the most selective."""
    usable = [strings for strings in candidates if strings and all(strings)]
    if not usable:
        return None
    return max(usable, key=lambda strings: min(len(string) for string in strings))
