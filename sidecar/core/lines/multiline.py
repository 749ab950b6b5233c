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

from sidecar.core.lines import stacks

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
_HEADS: Final = BytesAhoCorasick(
    [b"\n" + marker for marker in PANIC_HEADS] + [KLOG_OPEN + b"\n", *stacks.MARKERS]
)
_KLOG_MARKER: Final = len(PANIC_HEADS)
#: The Java frame marker; the Python ones are between it and the klog one.
_JAVA_MARKER: Final = _KLOG_MARKER + len(stacks.MARKERS)


#: `record_end` when the block ends before the record does.
INCOMPLETE: Final = -1


def is_head(line: bytes) -> bool:
    """Whether a line starts a multi-line record, or a stack that makes the line before it
    (and a Java frame, the two before it) one."""
    return (
        line.startswith(PANIC_HEADS)
        or line.endswith(KLOG_OPEN)
        or line.startswith(
            (stacks.PY_TRACEBACK, stacks.PY_GROUP, stacks.PY_STACK, stacks.JAVA_FRAME, b'  File "')
        )
    )


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

    Heads are found in one pass of `_HEADS`, so a block without any costs little. A stack
    (`sidecar.core.lines.stacks`) starts its record at the line before it, when that line is in
    the block and in no other record.
    """
    return [
        (start, block.rfind(b"\n") if end == INCOMPLETE else end)
        for start, end in _records(block, limit, b"")
    ]


#: A head's kind in `_records`: a Go panic or klog value, or a stack.
_HEAD, _STACK = 0, 1


def _records(block: bytes, limit: int, partial: bytes) -> list[tuple[int, int]]:
    """`spans`, with `INCOMPLETE` for a last record that the block ends before."""
    heads: list[tuple[int, int]] = [(0, _HEAD)] if block.startswith(PANIC_HEADS) else []
    if block.startswith((stacks.PY_TRACEBACK, stacks.PY_STACK, b'  File "')):
        heads.append((0, _STACK))
    for marker, start, _ in _HEADS.find_matches_as_indexes(block, overlapping=True):
        if marker < _KLOG_MARKER:
            heads.append((start + 1, _HEAD))  # after the newline
        elif marker == _KLOG_MARKER:
            line_start = block.rfind(b"\n", 0, start) + 1
            if not block.startswith(KLOG_CLOSE, line_start):
                heads.append((line_start, _HEAD))
        elif marker == _JAVA_MARKER:
            heads.append((stacks.java_stack_start(block, start + 1), _STACK))
        else:
            heads.append((start + 1, _STACK))
    found: list[tuple[int, int]] = []
    covered = -1
    for found_at, kind in sorted(heads):
        head = found_at
        if head <= covered:
            continue  # inside the previous record (a `panic: ` line within a panic's header)
        if kind == _HEAD:
            end = record_end(block, head, limit)
        else:
            stack_line_end = block.find(b"\n", head)
            line_before = block.rfind(b"\n", 0, max(head - 1, 0)) + 1
            if head > 0 and line_before > covered and stack_line_end - line_before <= limit:
                # The line the stack belongs to starts the record, within the same bound.
                end = stacks.stack_end(block, head, limit - (head - line_before), partial)
                if end == stack_line_end and not block.startswith(stacks.JAVA_FRAME, head):
                    continue  # a traceback's first line and nothing after it: no stack
                head = line_before
            else:
                end = stacks.stack_end(block, head, limit, partial)
        if end == INCOMPLETE or end > block.find(b"\n", head):
            found.append((head, end))
        if end == INCOMPLETE:
            break
        covered = end
    return found


def incomplete_tail(block: bytes, limit: int, partial: bytes = b"") -> int:
    """Where an unfinished multi-line record starts in the last `limit` bytes, or -1.

    `partial` is the line begun after the block: what it starts with tells whether a stack at
    the block's end goes on, or whether the block's last line is about to get one;
    `stacks.ANY_NEXT` when no line is begun yet and any may come. Every head
    marker is found in one pass of `_HEADS` (it runs on every block the framer cuts; a `rfind`
    per marker, each ending in a space or a newline, cost some 70 us per 64 KiB; every marker
    starts with a byte rare in logs, `\\n` or `=`, which keeps the automaton's prefilter fast).
    """
    window = max(0, len(block) - limit)
    panics = [-1] * len(PANIC_HEADS)
    if window == 0:
        for index, head in enumerate(PANIC_HEADS):
            if block.startswith(head):
                panics[index] = 0
    close = -1
    stacked = False
    for marker, start, _ in _HEADS.find_matches_as_indexes(block, overlapping=True):
        if start < window:
            continue
        if marker < _KLOG_MARKER:
            panics[marker] = start + 1  # the last one, as `rfind` found it
        elif marker == _KLOG_MARKER:
            close = start
        else:
            stacked = True
    marked = stacked or close != -1 or panics != [-1] * len(PANIC_HEADS)
    earliest = _unfinished_stack(block, limit, window, partial, stacked, marked=marked)
    for position in panics:
        if position != -1 and record_end(block, position, limit) == INCOMPLETE:
            earliest = position if earliest == -1 else min(earliest, position)
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


def _unfinished_stack(
    block: bytes, limit: int, window: int, partial: bytes, stacked: bool, *, marked: bool
) -> int:
    """Where a stack record the block ends in starts (its line included), or -1.

    Stacks are looked for only when the window holds a marker of one (`stacked`) or the partial
    line may begin one. The lines before a partial line that may begin
    a stack are held too, unless they end a record: a traceback's or a Java exception's line,
    or a Java stack's line and exception line (when the partial line is a frame). Records are
    looked for only when the window holds a head of any (`marked`): a block that ends at a
    newline (`stacks.ANY_NEXT`) seldom does, and then costs no second pass.
    """
    frame = stacks.begins_frame(partial)
    begun = frame or stacks.begins_stack(partial)
    headed = window == 0 and block.startswith((stacks.PY_TRACEBACK, stacks.PY_STACK, b'  File "'))
    if not (begun or stacked or headed):
        return -1
    begin = block.find(b"\n", window - 1) + 1 if window else 0
    records = (
        _records(block[begin:] if begin else block, limit, partial) if marked or headed else []
    )
    if records and records[-1][1] == INCOMPLETE:
        return begin + records[-1][0]
    if not begun or len(block) < 2:
        return -1
    covered = begin + records[-1][1] if records else -1
    last = block.rfind(b"\n", 0, len(block) - 1) + 1
    if last <= covered or stacks.is_stack_line(block[last:]):
        return -1  # the last line ends a record, or is a stack's: no line of its own
    if frame:
        if block.endswith(KLOG_OPEN + b"\n") or block.startswith(PANIC_HEADS, last):
            return -1  # a klog value or a panic's frames: held above when unfinished
        if not stacks.JAVA_EXCEPTION.match(block, last, len(block) - 1):
            return last  # not an exception's line: a frame's stack would start after it
        before = block.rfind(b"\n", 0, max(last - 1, 0)) + 1
        return before if before > covered else last
    return last
