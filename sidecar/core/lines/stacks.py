"""Where a stack trace printed after a log line ends: Python tracebacks and Java stack traces.

Both are written by the logger right after the line that logs the exception, in the same write
(Python's `logging.Formatter.format` appends `formatException`'s text after a newline; logback's
`ThrowableProxyConverter` and log4j2's `%xEx` after `%n`), so they belong to that line: the line
and its stack are one record, the stack a field of the line's record. Cut into lines, none of the
stack's lines is a log line of its own.

The shapes, as their printers make them:

- CPython's `traceback.TracebackException.format` (Lib/traceback.py): `Traceback (most recent call
  last):`, then two-space indented frames (`  File "f.py", line 3, in g`, the code line indented
  four, carets and `[Previous line repeated N more times]` indented too), then the unindented
  exception line (`ValueError: bad`). A chain prints the earlier exception first, then an empty
  line, `During handling of the above exception, another exception occurred:` or `The above
  exception was the direct cause of the following exception:`, an empty line, and the next
  traceback (or the exception line alone, when that exception was never raised). An exception
  group (3.11) is a box of indented lines under `  + Exception Group Traceback (most recent call
  last):`.
- Java's `Throwable.printStackTrace` (java/lang/Throwable.java): the exception's `toString()`
  (`java.lang.IllegalStateException: boom`), frames `\\tat pkg.Class.method(File.java:10)`,
  `\\t... N more`, `Caused by: ...` and `\\tSuppressed: ...` (its frames indented once more).
  logback's `ThrowableProxyConverter` writes the same with `\\t... N common frames omitted` and
  packaging data after a frame (`~[app.jar:1.0]`); its root-cause-first `%rEx` writes `Wrapped
  by: `.

A stack is recognised by its first line (`Traceback ...`) or, for Java, by its first frame: the
exception line is the line before the first `\\tat `, and the logged line the one before that.
A stack that comes without its line (at the start of a block: the line went in an earlier one)
is still one record, which decodes as a continuation and never makes an Event.
"""

from __future__ import annotations

import re
from typing import Final

PY_TRACEBACK: Final = b"Traceback (most recent call last):"
PY_GROUP: Final = b"  + Exception Group Traceback (most recent call last):"
#: `logging`'s `stack_info=True`: the caller's frames, after the exception's when there is one.
PY_STACK: Final = b"Stack (most recent call last):"
PY_CHAINS: Final = (
    b"During handling of the above exception, another exception occurred:",
    b"The above exception was the direct cause of the following exception:",
)
JAVA_FRAME: Final = b"\tat "
#: Lines that continue a Java stack after its exception line.
JAVA_CONTINUED: Final = (b"\t", b"Caused by: ", b"Wrapped by: ")
#: Markers of a stack's start for the multi-line finder's automaton, each after a newline.
#: The Java one last (`sidecar.core.lines.multiline` tells it apart by its index).
MARKERS: Final = (
    b"\n" + PY_TRACEBACK + b"\n",
    b"\n" + PY_GROUP + b"\n",
    b"\n" + PY_STACK + b"\n",
    b"\n" + JAVA_FRAME,
)
#: A stack's lines, its exception's many frames included; the byte limit bounds it too.
MAX_STACK_LINES: Final = 512
#: `stack_end` when the block ends before the stack does (the value of `multiline.INCOMPLETE`).
INCOMPLETE: Final = -1
#: The `partial` that stands for a next line not begun yet: the block ended exactly at a newline,
#: and whatever comes next may continue the stack at its end or begin one after its last line
#: (the framer's linger, `sidecar.core.lines.scan.LineFramer`). A real partial line never holds a
#: newline, so it is never this.
ANY_NEXT: Final = b"\n"
#: Where a Python stack's lines are when the block ends.
_FRAMES, _GROUP, _EXCEPTION, _BLANK, _CHAIN, _AFTER_CHAIN = range(6)


def java_stack_start(block: bytes, frame: int) -> int:
    """The start of the exception line above the frame line starting at `frame` (0 if none);
    the frame's own start when the line above is not an exception's (`pkg.Class: message`):
    then it is the logged line, its stack printed without one, and must stay a line."""
    above = block.rfind(b"\n", 0, max(frame - 1, 0)) + 1
    if frame == 0 or is_stack_line(block[above:frame]):
        return above
    return above if JAVA_EXCEPTION.match(block, above, frame - 1) else frame


#: A Java exception line as `Throwable.toString` writes it: the class name (a package-qualified
#: one, or a bare one), then `: message` or nothing. No log line's head looks like it: a time,
#: `{`, `[`, klog's `E0111 14:21:03`, logfmt's `time=` all differ before the first space.
JAVA_EXCEPTION: Final = re.compile(rb"[A-Za-z_$][\w$]*(?:\.[\w$]+)*(?::[ \t].*|:)?$", re.DOTALL)


def stack_end(block: bytes, start: int, limit: int, partial: bytes = b"") -> int:
    """The end (exclusive, before its newline) of the stack whose first line starts at `start`.

    `partial` is the line the block's writer has begun but not finished (the framer's): a stack
    that reaches the end of the block is unfinished (`INCOMPLETE`) only when what follows is
    known to continue it, so that a stack at the end of a burst is not held back until the next
    line (its writer wrote it whole, in one write).
    """
    if block.startswith((PY_TRACEBACK, PY_GROUP, PY_STACK), start):
        return _python_end(block, start, limit, partial)
    if block.startswith(b'  File "', start):  # a traceback's frames, its head in a former block
        return _python_end(block, start, limit, partial, in_frames=True)
    return _java_end(block, start, limit, partial)


def _python_end(
    block: bytes, start: int, limit: int, partial: bytes, *, in_frames: bool = False
) -> int:
    end = block.find(b"\n", start)
    if in_frames:
        end, state = start - 1, _FRAMES
    else:
        # A group's box and `stack_info`'s frames are indented lines only, with no exception line.
        state = _FRAMES if block.startswith(PY_TRACEBACK, start) else _GROUP
    position, count = end + 1, 1
    framed = in_frames  # a traceback's header is always followed by a frame
    while count < MAX_STACK_LINES:
        newline = block.find(b"\n", position)
        if newline == -1 or newline - start > limit:
            break
        line = block[position:newline]
        if state in (_FRAMES, _GROUP):
            if line[:1] == b" ":  # frames, code, carets, an exception group's box
                end, framed = newline, True
            elif state == _GROUP or not line or not framed:
                return end  # a group has no exception line of its own; a traceback needs one
            else:
                end, state = newline, _EXCEPTION  # `ValueError: bad`
        elif state == _EXCEPTION:
            if line == PY_STACK:
                end, state = newline, _GROUP  # `stack_info` after the exception
            elif line:
                return end
            else:
                state = _BLANK
        elif state == _BLANK:
            if line not in PY_CHAINS:
                return end
            state = _CHAIN
        elif state == _CHAIN:
            if line:
                return end
            state = _AFTER_CHAIN
        elif line == PY_TRACEBACK:
            end, state, framed = newline, _FRAMES, False
        elif line == PY_GROUP:
            end, state = newline, _GROUP
        elif line and line[:1] != b" ":
            end, state = newline, _EXCEPTION  # a cause that was never raised: no traceback
        else:
            return end
        position, count = newline + 1, count + 1
    if count >= MAX_STACK_LINES or _past_limit(block, position, start, limit):
        return end
    if state == _EXCEPTION:
        # Complete, unless the next line is empty (then it is in the block, or yet to come).
        return INCOMPLETE if partial == ANY_NEXT else end
    if state in (_BLANK, _CHAIN, _AFTER_CHAIN):
        return INCOMPLETE  # a chain is being written
    # In the frames: the exception line is still to come; or a group's box, continued when the
    # partial line is indented.
    return INCOMPLETE if state == _FRAMES or partial[:1] == b" " or partial == ANY_NEXT else end


def _java_end(block: bytes, start: int, limit: int, partial: bytes) -> int:
    """The exception line, then frames, `... N more`, `Caused by: `, `Suppressed: `."""
    end = block.find(b"\n", start)
    position, count = end + 1, 1
    while count < MAX_STACK_LINES:
        newline = block.find(b"\n", position)
        if newline == -1 or newline - start > limit:
            break
        if not block.startswith(JAVA_CONTINUED, position):
            return end
        end, position, count = newline, newline + 1, count + 1
    if count >= MAX_STACK_LINES or _past_limit(block, position, start, limit):
        return end
    return INCOMPLETE if continues_java(partial) else end


def continues_java(partial: bytes) -> bool:
    """Whether a line begun with `partial` continues a Java stack (or may: it is too short)."""
    return partial == ANY_NEXT or (
        bool(partial)
        and any(partial.startswith(mark) or mark.startswith(partial) for mark in JAVA_CONTINUED)
    )


def _past_limit(block: bytes, position: int, start: int, limit: int) -> bool:
    """Whether the record already reached the byte limit, so what follows cannot be part of it."""
    next_newline = block.find(b"\n", position)
    return (next_newline != -1 and next_newline - start > limit) or len(block) - start > limit


def begins_stack(partial: bytes) -> bool:
    """Whether a line begun with `partial` may be the first line of a stack: a traceback's
    header, or a Java exception line once its class name's first dot is in (a package-qualified
    name starts in lower case; a word such as `time=`, or a timestamp, is not one). Before that
    dot nothing is held: a line that merely starts in lower case must not hold back the one
    before it."""
    if not partial:
        return False
    if partial == ANY_NEXT:
        return True
    if any(
        marker.startswith(partial[: len(marker)]) for marker in (PY_TRACEBACK, PY_GROUP, PY_STACK)
    ):
        return True
    return _JAVA_EXCEPTION_BEGUN.match(partial) is not None


#: The beginning of a Java exception line as `Throwable.toString` writes it: `pkg.Class: message`.
_JAVA_EXCEPTION_BEGUN: Final = re.compile(rb"[a-z][\w$]*\.[\w$.]*(?::.*)?\Z", re.DOTALL)


def begins_frame(partial: bytes) -> bool:
    """Whether a line begun with `partial` may be a Java frame (`\\tat ...`)."""
    return partial == ANY_NEXT or (
        bool(partial)
        and (partial.startswith(JAVA_FRAME) or JAVA_FRAME.startswith(partial[: len(JAVA_FRAME)]))
    )


def is_stack_line(line: bytes) -> bool:
    """Whether a line is one a stack is made of (after its first), never a log line's start."""
    return line[:1] in (b" ", b"\t") or line.startswith((b"Caused by: ", b"Wrapped by: "))


def is_headless(record: bytes) -> bool:
    """Whether a multi-line record found by `sidecar.core.lines.multiline.spans` is a stack
    alone, its log line in an earlier block (or none)."""
    first = record.find(b"\n")
    head = record[:first]
    if head.startswith((PY_TRACEBACK, PY_STACK)) or is_stack_line(head):
        return True
    # The head is the exception line.
    return record.startswith(JAVA_FRAME, first + 1) and JAVA_EXCEPTION.match(head) is not None


def is_stack(rest: bytes) -> bool:
    """Whether the lines after a record's first line are a stack (rather than klog or a panic)."""
    if rest.startswith((PY_TRACEBACK, PY_GROUP, PY_STACK, JAVA_FRAME)):
        return True
    second = rest.find(b"\n")
    return second != -1 and rest.startswith(JAVA_FRAME, second + 1)


def exception_of(stack: str) -> str:
    """The exception a stack reports: a traceback's last exception line (the one raised last),
    or a Java stack's first line (the exception thrown; its causes follow)."""
    lines = stack.split("\n")
    if lines[0].startswith("Stack ("):
        return ""  # `stack_info` alone: no exception
    if lines[0].startswith("\t"):
        return ""  # frames printed without the exception's line
    if not lines[0].startswith(("Traceback (", "  + Exception Group")):
        return lines[0]
    for line in reversed(lines):
        if line and not line.startswith(
            (" ", "Traceback (", "Stack (", "The above", "During handling")
        ):
            return line
    return ""
