"""Splitting a byte stream into lines and picking the few that any rule could match.

This is the hot path: most lines a controller writes match no rule. Rather than split every line
and decode it, the pre-filter searches a whole block of complete lines for the literals the rules
need (`bytes.find` runs in C at memory speed) and extracts only the lines around the hits. Lines
over the length limit are found without visiting every line: any line longer than `limit` spans
one of the positions `k * limit`, so only those positions are checked.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_LINE_BYTES = 100 * 1024


@dataclass(frozen=True, slots=True)
class Selection:
    """The outcome of scanning one block of complete lines."""

    #: Lines (without newline) that contain a rule literal, in order; all lines without filter.
    candidates: list[bytes]
    lines: int
    too_long: int


def select_lines(block: bytes, literals: frozenset[bytes] | None, limit: int) -> Selection:
    """Scan `block`, which holds complete lines each ending in a newline."""
    lines = block.count(b"\n")
    long_spans = _long_lines(block, limit)
    if literals is None:
        candidates = [line for line in block.split(b"\n")[:-1] if len(line) <= limit]
        return Selection(candidates, lines, len(long_spans))
    starts: dict[int, int] = {}
    find, rfind = block.find, block.rfind
    for literal in literals:
        position = find(literal)
        while position != -1:
            start = rfind(b"\n", 0, position) + 1
            end = find(b"\n", position)
            if end == -1:  # a last line without its newline (callers should not pass one)
                end = len(block)
            starts[start] = end
            position = find(literal, end)
    candidates = [
        block[start : starts[start]] for start in sorted(starts) if starts[start] - start <= limit
    ]
    return Selection(candidates, lines, len(long_spans))


def _long_lines(block: bytes, limit: int) -> set[int]:
    """Start offsets of the lines longer than `limit` bytes."""
    found: set[int] = set()
    if len(block) <= limit:
        return found
    find, rfind = block.find, block.rfind
    for position in range(limit, len(block), limit):
        start = rfind(b"\n", 0, position) + 1
        end = find(b"\n", position)
        if end == -1:
            end = len(block)
        if end - start > limit:
            found.add(start)
    return found


class LineFramer:
    """Cuts an arbitrary byte stream into blocks of complete lines, memory bounded.

    A partial last line is held until its newline. A line that grows past `limit` without one is
    dropped as it streams in (counted in `too_long`), so one runaway line cannot exhaust memory.
    """

    def __init__(self, limit: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self.limit = limit
        self._partial = b""
        self._discarding = False
        #: Lines dropped so far for being too long.
        self.too_long = 0
        self._reported = 0

    @property
    def pending(self) -> int:
        """Bytes held back as a partial line."""
        return len(self._partial)

    def feed(self, data: bytes) -> bytes:
        """Return the complete lines of `partial + data` (ending in a newline), or b""."""
        if self._discarding:
            newline = data.find(b"\n")
            if newline == -1:
                return b""
            self._discarding = False
            data = data[newline + 1 :]
        cut = data.rfind(b"\n")
        if cut == -1:
            self._partial += data
            self._check_partial()
            return b""
        block = self._partial + data[: cut + 1] if self._partial else data[: cut + 1]
        self._partial = data[cut + 1 :]
        self._check_partial()
        return block

    def take_too_long(self) -> int:
        """Lines dropped since the last call: what the caller has not counted yet."""
        new, self._reported = self.too_long - self._reported, self.too_long
        return new

    def flush(self) -> bytes:
        """At end of input, the held partial line as a complete line (replay's last line)."""
        if not self._partial:
            return b""
        block, self._partial = self._partial + b"\n", b""
        return block

    def _check_partial(self) -> None:
        if len(self._partial) > self.limit:
            self._partial = b""
            self._discarding = True
            self.too_long += 1
