"""Splitting a byte stream into lines and picking the few that any rule could match.

This is the hot path: most lines a controller writes match no rule. Rather than split every line
and decode it, the pre-filter searches a whole block of complete lines for the literals the rules
need, all of them in one pass (an Aho-Corasick automaton with a SIMD prefilter, from
`ahocorasick_rs`: about three times faster than one `bytes.find` pass per literal on three
literals, and five times faster than a compiled alternation regex), and extracts only the lines
around the hits. Lines
over the length limit are found without visiting every line: any line longer than `limit` spans
one of the positions `k * limit`, so only those positions are checked.
"""

from __future__ import annotations

import functools
from bisect import bisect_right
from dataclasses import dataclass

from ahocorasick_rs import BytesAhoCorasick

from sidecar.core.lines.multiline import incomplete_tail, spans
from sidecar.core.lines.stacks import ANY_NEXT

DEFAULT_MAX_LINE_BYTES = 100 * 1024
#: Seconds a source lets a line wait for a stack after its input went quiet (`LineFramer.release`).
#: A logger writes a line and its stack in one write, but a reader may get them in two reads cut
#: exactly at the newline between them (the kubelet streams a pod log line by line): the line is
#: held back until more bytes come, and for at most this long when none do. Short, because every
#: last line of a burst waits this long (far under the apiserver's round trip); long enough for
#: the rest of a write already on its way (the kubelet's next line, a socket's next segment).
DEFAULT_LINGER = 0.05


@dataclass(frozen=True, slots=True)
class Selection:
    """The outcome of scanning one block of complete lines."""

    #: Lines (without newline) that contain a rule literal, in order; all lines without filter.
    candidates: list[bytes]
    lines: int
    too_long: int


def select_lines(block: bytes, literals: frozenset[bytes] | None, limit: int) -> Selection:
    """Scan `block`, which holds complete lines each ending in a newline.

    A multi-line record (see `sidecar.core.lines.multiline`) is one candidate, its lines joined by
    newlines.
    """
    lines = block.count(b"\n")
    long_spans = _long_lines(block, limit)
    records = spans(block, limit)
    if literals is None:
        if not records:
            candidates = [line for line in block.split(b"\n")[:-1] if len(line) <= limit]
            return Selection(candidates, lines, len(long_spans))
        candidates = []
        position = 0
        for start, end in records:
            candidates.extend(block[position:start].split(b"\n")[:-1])
            candidates.append(block[start:end])
            position = end + 1
        candidates.extend(block[position:].split(b"\n")[:-1])
        candidates = [line for line in candidates if len(line) <= limit]
        return Selection(candidates, lines, len(long_spans))
    record_starts = [start for start, _ in records]
    starts: dict[int, int] = {}
    find, rfind = block.find, block.rfind
    # The line (or record) of the last hit: further hits inside it need no look-up.
    start = end = -1
    matches = (
        _searcher(literals).find_matches_as_indexes(block, overlapping=True) if literals else ()
    )
    for _, position, _ in matches:
        if start <= position <= end:
            continue
        index = bisect_right(record_starts, position) - 1
        if index >= 0 and position <= records[index][1]:
            start, end = records[index]
        else:
            start = rfind(b"\n", 0, position) + 1
            end = find(b"\n", position)
            if end == -1:  # a last line without its newline (callers should not pass one)
                end = len(block)
        starts[start] = end
    candidates = [
        block[start : starts[start]] for start in sorted(starts) if starts[start] - start <= limit
    ]
    return Selection(candidates, lines, len(long_spans))


@functools.lru_cache(maxsize=8)
def _searcher(literals: frozenset[bytes]) -> BytesAhoCorasick:
    """One automaton per literal set (a rules file has one; built once, on first use)."""
    return BytesAhoCorasick(sorted(literals))


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
    """Cuts an arbitrary byte stream into blocks of complete records, memory bounded.

    A partial last line is held until its newline, and the complete lines of an unfinished
    multi-line record (a Go panic, a klog `key=<` value; at most `limit` bytes) until it ends, so
    a block never ends inside a record and an offset after a block is after a complete record. A
    line that grows past `limit` without a newline is dropped as it streams in (counted in
    `too_long`), so one runaway line cannot exhaust memory.

    A block that ends exactly at a newline keeps its last line back (and a Java exception's line
    with the line before it) while a stack may still follow it, or a stack at its end may still
    go on: a read cut between a line and its stack must not part them. Such lines are
    `lingering`: the next bytes join them, and a source whose input stays quiet for its linger
    time (`DEFAULT_LINGER`) takes them with `release`, so no line waits longer than that for a
    stack that is not coming. They count in `pending`, so a checkpoint stays before them.

    `records=False` frames lines only: for bytes that are not yet the controller's own (the pod
    log's lines, each behind the kubelet's timestamp), where a record's head is not at the start
    of its line; their lines are framed into records once the timestamps are off.
    """

    def __init__(self, limit: int = DEFAULT_MAX_LINE_BYTES, *, records: bool = True) -> None:
        self.limit = limit
        self._records = records
        self._partial = b""
        #: Complete lines of a multi-line record that has not ended yet.
        self._held = b""
        self._discarding = False
        #: `_held` is held only because the block ended at a newline: `release` may let it go.
        self._lingering = False
        #: Lines dropped so far for being too long.
        self.too_long = 0
        self._reported = 0

    @property
    def pending(self) -> int:
        """Bytes held back: a partial line and an unfinished multi-line record."""
        return len(self._held) + len(self._partial)

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
            if self._held and self.pending > self.limit:
                block, self._held = self._held, b""  # as below: the record ends here
                self._lingering = False
                return block
            return b""
        if self._held or self._partial:
            # One copy (join takes the memoryview's bytes as they are), not a slice and a concat.
            block = b"".join((self._held, self._partial, memoryview(data)[: cut + 1]))
        elif cut == len(data) - 1:
            block = data  # the chunk ends with a line: no copy at all
        else:
            block = data[: cut + 1]
        self._partial = data[cut + 1 :]
        self._check_partial()
        self._lingering = False
        if not self._records:
            held = -1
        elif self._partial or self._discarding:
            held = incomplete_tail(block, self.limit, self._partial)
        else:
            # Cut exactly at a newline: what comes next may be a stack of the last line, or more
            # of a stack at the end. Held only for that (no record in it is unfinished whatever
            # comes next; that check reads the short tail only): lingering.
            held = incomplete_tail(block, self.limit, ANY_NEXT)
            self._lingering = held != -1 and incomplete_tail(block[held:], self.limit) == -1
        # A record whose next line (the partial one) would take it past the limit ends here: its
        # lines go now, and what is held back stays within one limit.
        if held == -1 or len(block) - held + len(self._partial) > self.limit:
            self._held = b""
            self._lingering = False
            return block
        self._held = block[held:]
        return block[:held]

    @property
    def lingering(self) -> bool:
        """Whether lines are held back only for a stack that may still follow (see `release`)."""
        return self._lingering

    def release(self) -> bytes:
        """The lingering lines, for a source whose input has been quiet for its linger time: no
        stack is coming after them (a logger writes a line and its stack at once). Lines that a
        partial line begun since may still get a stack from stay held, as in `feed`, until its
        newline."""
        if not self._lingering:
            return b""
        self._lingering = False
        if self._partial and incomplete_tail(self._held, self.limit, self._partial) != -1:
            return b""
        block, self._held = self._held, b""
        return block

    @property
    def partial(self) -> bytes:
        """The last line's bytes so far, its newline not yet seen."""
        return self._partial

    def take_too_long(self) -> int:
        """Lines dropped since the last call: what the caller has not counted yet."""
        new, self._reported = self.too_long - self._reported, self.too_long
        return new

    def flush(self, *, partial: bool = True) -> bytes:
        """At end of input, what is held, the partial line as a complete line (replay's last);
        without `partial`, the partial line is dropped (a writer cut off in mid-line)."""
        block = self._held + (self._partial + b"\n" if self._partial and partial else b"")
        self._held = self._partial = b""
        self._lingering = False
        return block

    def _check_partial(self) -> None:
        if len(self._partial) > self.limit:
            self._partial = b""
            self._discarding = True
            self.too_long += 1
