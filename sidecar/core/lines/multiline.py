"""Where a log record that spans several lines ends: Go panics and klog's multi-line values.

A Go program that panics writes `panic: <value>` (or the runtime's `fatal error: <text>`), then
`goroutine N [running]:` and the stack, two lines per frame, to stderr. klog writes a value that
holds newlines as `key=<`, the value's lines indented by a tab, and ` >`. Either is one record; cut
into lines, none of them decodes.

These functions find such records in a block of complete lines so that the framer never splits
one across blocks (and a checkpoint never lands inside one) and the pre-filter hands one whole to
the decoder. Records are bounded, by `MAX_RECORD_LINES` and by the line length limit in bytes: past
either, the record ends there, and what follows are lines of their own (undecodable, counted).
"""

from __future__ import annotations

import re
from typing import Final

from ahocorasick_rs import BytesAhoCorasick

MAX_RECORD_LINES: Final = 64
#: Go panics: the head line and, after it, what may come before the goroutine header.
PANIC_HEADS: Final = (b"panic: ", b"fatal error: ")
#: Frames of the runtime itself, which come before the frame of the code that panicked.
_RUNTIME_FRAME = re.compile(rb"(panic|runtime\.|runtime/)")
_GOROUTINE = re.compile(rb"goroutine \d+ \[[^\]]*\]:")
KLOG_OPEN: Final = b"=<"
KLOG_CLOSE: Final = b" >"

#: Every head marker in one pass. Each is searched with a newline on the side where one must be
#: (a panic's head starts a line, klog's `=<` ends one): the automaton's SIMD prefilter then keys
#: on two-byte pairs that are rare in logs, about 25 times faster than a `bytes.find` per marker,
#: whose skip loop stalls on markers ending in a space or a newline. Overlapping, so that a
#: `=<` line followed by a panic's head finds both.
_HEADS: Final = BytesAhoCorasick([b"\n" + marker for marker in PANIC_HEADS] + [KLOG_OPEN + b"\n"])
_KLOG_MARKER: Final = len(PANIC_HEADS)

#: `record_end` when the block ends before the record does.
INCOMPLETE: Final = -1


def is_head(line: bytes) -> bool:
    """Whether a line starts a multi-line record."""
    return line.startswith(PANIC_HEADS) or line.endswith(KLOG_OPEN)


def record_end(block: bytes, start: int, limit: int) -> int:
    """The end (exclusive, before its newline) of the record whose head line starts at `start`.

    The head line ends in a newline. Return `INCOMPLETE` when the block ends first and the record
    is still within its bounds: the caller should wait for more.
    """
    head_end = block.find(b"\n", start)
    head = block[start:head_end]
    if head.startswith(PANIC_HEADS):
        return _panic_end(block, start, head_end, limit)
    if head.endswith(KLOG_OPEN):
        return _klog_end(block, start, head_end, limit)
    return head_end


def _lines_after(block: bytes, end: int, start: int, limit: int) -> list[tuple[int, int]]:
    """(start, end) of the complete lines after position `end` (a newline), within the bounds."""
    found: list[tuple[int, int]] = []
    position = end + 1
    while len(found) < MAX_RECORD_LINES - 1:
        newline = block.find(b"\n", position)
        if newline == -1 or newline - start > limit:
            break
        found.append((position, newline))
        position = newline + 1
    return found


def _bounded(block: bytes, lines: list[tuple[int, int]], start: int, limit: int) -> bool:
    """Whether the record reached a bound, so that what the block lacks will never be part of it."""
    if len(lines) >= MAX_RECORD_LINES - 1:
        return True
    last = lines[-1][1] if lines else block.find(b"\n", start)
    next_newline = block.find(b"\n", last + 1)
    # The next complete line would not fit, or a partial one already does not.
    return (next_newline != -1 and next_newline - start > limit) or len(block) - start > limit


def _panic_end(block: bytes, start: int, head_end: int, limit: int) -> int:
    """Head, then lines up to `goroutine N [...]:`, then frames up to the first of the code that
    panicked (past the runtime's frames)."""
    lines = _lines_after(block, head_end, start, limit)
    end = head_end
    # A panic re-raised by a deferred recover (controller-runtime's, for one) starts its stack in
    # the recovering function; the code that panicked comes after the `panic(...)` frame.
    after_panic_frame = b"[recovered]" not in block[start:head_end]
    in_stack = False
    function = b""  # a frame's function line, awaiting its `\tfile.go:N` line
    for line_start, line_end in lines:
        line = block[line_start:line_end]
        if not in_stack:
            if _GOROUTINE.fullmatch(line):
                in_stack = True
            elif not (line == b"" or line[:1] in (b"\t", b" ", b"[")):
                return end  # not part of a panic: the record was the head (and what fit)
        elif function:
            if line[:1] != b"\t":
                return end
            if function.startswith(b"panic("):
                after_panic_frame = True
            elif after_panic_frame and not _RUNTIME_FRAME.match(function):
                return line_end  # the first frame of the code that panicked: enough
            function = b""
        elif line == b"" or line[:1] in (b"\t", b" "):
            return end
        else:
            function = line
        end = line_end
    return end if _bounded(block, lines, start, limit) else INCOMPLETE


def _klog_end(block: bytes, start: int, head_end: int, limit: int) -> int:
    """Head `key=<`, tab-indented value lines, ` >` (which may open the next value: ` > k=<`)."""
    lines = _lines_after(block, head_end, start, limit)
    end = head_end
    for line_start, line_end in lines:
        line = block[line_start:line_end]
        if line.startswith(KLOG_CLOSE):
            if not line.endswith(KLOG_OPEN):
                return line_end
        elif line[:1] != b"\t":
            return end  # the value was cut short: the record ends with what there is
        end = line_end
    return end if _bounded(block, lines, start, limit) else INCOMPLETE


def spans(block: bytes, limit: int) -> list[tuple[int, int]]:
    """(start, end) of every multi-line record in a block of complete lines, in order.

    Heads are found in one pass of `_HEADS`, so a block without any costs little.
    """
    heads: list[int] = [0] if block.startswith(PANIC_HEADS) else []
    for marker, start, _ in _HEADS.find_matches_as_indexes(block, overlapping=True):
        if marker != _KLOG_MARKER:
            heads.append(start + 1)  # after the newline
            continue
        line_start = block.rfind(b"\n", 0, start) + 1
        if not block.startswith(KLOG_CLOSE, line_start):
            heads.append(line_start)
    found: list[tuple[int, int]] = []
    covered = -1
    for head in sorted(heads):
        if head <= covered:
            continue  # inside the previous record (a `panic: ` line within a panic's header)
        end = record_end(block, head, limit)
        if end == INCOMPLETE:
            end = block.rfind(b"\n")  # the framer holds incomplete ones back; flush gives them
        if end > block.find(b"\n", head):
            found.append((head, end))
        covered = end
    return found


def incomplete_tail(block: bytes, limit: int) -> int:
    """Where an unfinished multi-line record starts in the last `limit` bytes, or -1."""
    window = max(0, len(block) - limit)
    earliest = -1
    for marker in PANIC_HEADS:
        position = block.rfind(b"\n" + marker, window)
        if position != -1:
            position += 1
        elif block.startswith(marker) and window == 0:
            position = 0
        if position != -1 and record_end(block, position, limit) == INCOMPLETE:
            earliest = position if earliest == -1 else min(earliest, position)
    close = block.rfind(KLOG_OPEN + b"\n", window)
    if close != -1:
        line_start = block.rfind(b"\n", 0, close) + 1
        # A ` > key=<` line continues a record that starts further up.
        while block.startswith(KLOG_CLOSE, line_start) and line_start > window:
            previous = block.rfind(KLOG_OPEN + b"\n", window, line_start)
            if previous == -1:
                break
            line_start = block.rfind(b"\n", 0, previous) + 1
        if record_end(block, line_start, limit) == INCOMPLETE:
            earliest = line_start if earliest == -1 else min(earliest, line_start)
    return earliest
