"""Multi-line records: where they end, and that framing and the pre-filter never split one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sidecar.core.lines.decode import decode
from sidecar.core.lines.multiline import (
    INCOMPLETE,
    MAX_RECORD_LINES,
    incomplete_tail,
    record_end,
    spans,
)
from sidecar.core.lines.records import Record
from sidecar.core.lines.scan import LineFramer, select_lines
from sidecar.core.lines.stacks import is_stack_line

LIMIT = 4096
KLOG = b'I0111 14:21:00.000000 1 main.go:1] "before"\n'
PANIC = (
    b"panic: boom\n"
    b"\n"
    b"goroutine 1 [running]:\n"
    b"panic({0x1, 0x2})\n"
    b"\t/usr/local/go/src/runtime/panic.go:770 +0x132\n"
    b"main.run()\n"
    b"\t/src/main.go:12 +0x1d\n"
)
REST_OF_STACK = b"main.main()\n\t/src/main.go:5 +0x10\n"
KLOG_VALUE = b'I0111 14:21:01.000000 1 main.go:2] "config" c=<\n\ta: 1\n\tb: 2\n >\n'
LOG = KLOG + PANIC + REST_OF_STACK + KLOG_VALUE + KLOG


def test_a_panic_ends_at_the_first_frame_of_the_code_that_panicked() -> None:
    assert spans(LOG, LIMIT) == [
        (len(KLOG), len(KLOG) + len(PANIC) - 1),
        (len(KLOG + PANIC + REST_OF_STACK), len(KLOG + PANIC + REST_OF_STACK + KLOG_VALUE) - 1),
    ]


@pytest.mark.parametrize("cut", range(1, len(PANIC)))
def test_an_unfinished_panic_is_incomplete(cut: int) -> None:
    block = PANIC[:cut]
    block = block[: block.rfind(b"\n") + 1] or b"panic: boom\n"
    if block == PANIC:
        return
    assert record_end(block, 0, LIMIT) == INCOMPLETE
    assert incomplete_tail(KLOG + block, LIMIT) == len(KLOG)


def test_a_panic_head_without_a_stack_is_a_record_of_one_line() -> None:
    block = b"panic: boom\n" + KLOG
    assert record_end(block, 0, LIMIT) == len(b"panic: boom")
    assert spans(block, LIMIT) == []
    assert select_lines(block, None, LIMIT).candidates == [b"panic: boom", KLOG[:-1]]


def test_records_are_bounded_in_lines_and_bytes() -> None:
    many = b"k=<\n" + b"\tline\n" * (MAX_RECORD_LINES * 2)
    end = record_end(many, 0, LIMIT)
    assert end != INCOMPLETE
    assert many[: end + 1].count(b"\n") == MAX_RECORD_LINES
    long = b"k=<\n" + (b"\t" + b"x" * 100 + b"\n") * 50
    end = record_end(long, 0, 1000)
    assert end != INCOMPLETE
    assert end <= 1000
    assert incomplete_tail(long, 1000) == -1


@pytest.mark.parametrize("size", [1, 7, 61, len(LOG)])
def test_the_framer_never_splits_a_record_and_holds_only_unfinished_ones(size: int) -> None:
    framer = LineFramer(LIMIT)
    blocks = [framer.feed(LOG[start : start + size]) for start in range(0, len(LOG), size)]
    blocks.append(framer.flush())
    assert b"".join(blocks) == LOG
    whole = select_lines(LOG, None, LIMIT).candidates
    assert [line for block in blocks for line in select_lines(block, None, LIMIT).candidates] == (
        whole
    )
    assert len(whole) == 1 + 1 + 2 + 1 + 1  # the stack's rest are lines of their own


def test_pending_counts_a_held_record_so_offsets_stop_before_it() -> None:
    framer = LineFramer(LIMIT)
    head = KLOG + PANIC[:30]
    block = framer.feed(head)
    assert block == KLOG
    assert framer.pending == len(head) - len(KLOG)
    assert framer.feed(PANIC[30:]) == PANIC
    assert framer.pending == 0


def test_a_framer_of_lines_only_holds_nothing_but_the_partial_line() -> None:
    # The pod log's lines, before their timestamps are off: records are framed afterwards.
    framer = LineFramer(LIMIT, records=False)
    cut = PANIC.rfind(b"\n", 0, 30) + 1
    assert framer.feed(PANIC[:30]) == PANIC[:cut]
    assert framer.partial == PANIC[cut:30]
    assert framer.pending == len(framer.partial)


def test_the_prefilter_hands_over_the_whole_record_whatever_line_the_literal_is_in() -> None:
    for literal in (b"boom", b"main.run", b"b: 2", b"config"):
        candidates = select_lines(LOG, frozenset([literal]), LIMIT).candidates
        assert len(candidates) == 1
        assert candidates[0] in (PANIC[:-1], KLOG_VALUE[:-1])


def test_what_the_framer_holds_stays_within_one_line_limit() -> None:
    """A held record and the partial line after it never exceed the limit together: the record
    could not take that line anyway, so its lines go at once."""
    framer = LineFramer(14)
    assert framer.feed(b"fatal error: \n") == b""  # held: a panic may follow
    assert framer.pending == 14
    assert framer.feed(b"x") == b"fatal error: \n"  # 15 bytes would be past the limit
    assert framer.pending == 1
    assert framer.flush() == b"x\n"


@pytest.mark.parametrize("head", [b"panic: boom\n", b"fatal error: all goroutines are asleep\n"])
def test_every_head_is_found_where_one_marker_ends_as_the_next_begins(head: bytes) -> None:
    """A klog value cut short right before a panic: the `=<` line's newline also opens the
    panic's head, which is still found (the cut value is a line of its own); and a head at the
    block's start, which no newline precedes."""
    cut_value = b'I0111 14:21:01.000000 1 main.go:2] "config" c=<\n'
    panic = head + PANIC[PANIC.index(b"\n") + 1 :]
    block = cut_value + panic + KLOG
    assert spans(block, LIMIT) == [(len(cut_value), len(cut_value) + len(panic) - 1)]
    assert spans(panic + KLOG, LIMIT) == [(0, len(panic) - 1)]


# Stacks printed after the line that logs the exception (sidecar.core.lines.stacks), as the
# golden cases python-traceback and java-stack-trace hold them: CPython 3.11's logging and
# traceback.py, OpenJDK 17's Throwable.printStackTrace under a log4j2 line.
PY_LOG = (Path(__file__).parent / "golden" / "python-traceback" / "input.log").read_bytes()
JAVA_LOG = (Path(__file__).parent / "golden" / "java-stack-trace" / "input.log").read_bytes()
#: logback's ThrowableProxyConverter: packaging data after frames, `common frames omitted`.
LOGBACK = (
    b"2024-01-11 14:21:03.806 ERROR 1 --- [main] c.e.Reconciler : reconcile failed\n"
    b"java.lang.IllegalStateException: boom\n"
    b"\tat com.example.Reconciler.reconcile(Reconciler.java:42) ~[app.jar:1.0]\n"
    b"\tat com.example.Main.main(Main.java:7) [app.jar:1.0]\n"
    b"Caused by: java.io.IOException: refused\n"
    b"\tat com.example.Client.call(Client.java:9) ~[app.jar:1.0]\n"
    b"\t... 2 common frames omitted\n"
    b"2024-01-11 14:21:04.806 INFO 1 --- [main] c.e.Reconciler : next\n"
)


def _heads(log: bytes) -> list[bytes]:
    """The candidates of a whole log: lines, and records of a line and its stack."""
    return select_lines(log, None, LIMIT).candidates


@pytest.mark.parametrize("log", [PY_LOG, JAVA_LOG, LOGBACK], ids=["python", "java", "logback"])
def test_a_stack_is_one_record_with_the_line_before_it(log: bytes) -> None:
    candidates = _heads(log)
    stacked = [line for line in candidates if b"\n" in line]
    # Every line is a log line's, or part of the record of the log line before its stack.
    assert all(not is_stack_line(line.split(b"\n")[0]) for line in candidates)
    assert sum(line.count(b"\n") + 1 for line in candidates) == log.count(b"\n")
    assert len(stacked) >= 1 and all(b"ERROR" in line.split(b"\n")[0] for line in stacked)
    heads = [line for line in log.split(b"\n") if line.startswith((b"[", b"20"))]
    assert [line.split(b"\n")[0] for line in candidates] == heads


@pytest.mark.parametrize("log", [PY_LOG, JAVA_LOG, LOGBACK], ids=["python", "java", "logback"])
def test_the_framer_keeps_a_stack_with_its_line_wherever_a_read_ends(log: bytes) -> None:
    """Mid-line, or exactly at a newline (the line lingers until the next bytes join it)."""
    whole = _heads(log)
    for cut in range(1, len(log)):
        if re.fullmatch(rb"[a-z]\w*", log[log.rfind(b"\n", 0, cut) + 1 : cut]):
            continue  # within an exception's first name: a line of its own until its dot
        framer = LineFramer(LIMIT)
        blocks = [framer.feed(log[:cut]), framer.feed(log[cut:]), framer.flush()]
        assert b"".join(blocks) == log
        got = [line for block in blocks for line in select_lines(block, None, LIMIT).candidates]
        assert got == whole, cut


@pytest.mark.parametrize("log", [PY_LOG, JAVA_LOG, LOGBACK], ids=["python", "java", "logback"])
def test_a_stack_read_a_byte_at_a_time_stays_with_its_line(log: bytes) -> None:
    """Every line ends a read: each lingers until the next byte, which may begin its stack."""
    framer = LineFramer(LIMIT)
    blocks = [framer.feed(log[i : i + 1]) for i in range(len(log))] + [framer.flush()]
    assert b"".join(blocks) == log
    assert [line for block in blocks for line in select_lines(block, None, LIMIT).candidates] == (
        _heads(log)
    )


@pytest.mark.parametrize("log", [PY_LOG, JAVA_LOG, LOGBACK], ids=["python", "java", "logback"])
def test_the_linger_releases_whole_records_at_every_cut(log: bytes) -> None:
    """Cut anywhere, the input quiet after the first part (`release`, the linger expired): what
    is released is whole lines and records. A cut between two log lines loses no join; one
    between a line and its stack (the stack came later than the linger) leaves the stack a
    continuation, never a line of its own."""
    whole = _heads(log)
    heads = [
        decoded
        for line in log.split(b"\n")
        if line.startswith((b"[", b"20")) and type(decoded := decode(line, year=2024)) is Record
    ]
    for cut in range(1, len(log)):
        framer = LineFramer(LIMIT)
        first = framer.feed(log[:cut])
        lingering, held = framer.lingering, framer.pending
        released = framer.release()
        assert not framer.lingering
        assert bool(released) <= lingering, cut
        blocks = [first, released, framer.feed(log[cut:]), framer.flush()]
        assert b"".join(blocks) == log, cut
        got = [line for block in blocks for line in select_lines(block, None, LIMIT).candidates]
        if log[cut - 1 : cut] == b"\n" and log[cut : cut + 1] in (b"[", b"2"):
            assert got == whole, cut  # the next line is a log line: nothing was waited for
        if log[cut - 1 : cut] == b"\n" and log[cut : cut + 1] not in (b"[", b"2"):
            assert held, cut  # a stack's line follows: the line before it was kept back
        records = [decoded for line in got if type(decoded := decode(line, year=2024)) is Record]
        assert [record.message for record in records] == [head.message for head in heads], cut


@pytest.mark.parametrize("log", [PY_LOG, JAVA_LOG, LOGBACK], ids=["python", "java", "logback"])
def test_a_stack_read_apart_from_its_line_never_decodes_as_lines(log: bytes) -> None:
    """Read a byte at a time and quiet past the linger after each: a stack comes after its line
    has gone. Its lines are then continuations, never records (so never Events)."""
    framer = LineFramer(LIMIT)
    blocks = [
        block for i in range(len(log)) for block in (framer.feed(log[i : i + 1]), framer.release())
    ] + [framer.flush()]
    assert b"".join(blocks) == log
    records = [
        decoded
        for block in blocks
        for line in select_lines(block, None, LIMIT).candidates
        if type(decoded := decode(line, year=2024)) is Record
    ]
    heads = [
        decoded
        for line in log.split(b"\n")
        if line.startswith((b"[", b"20")) and type(decoded := decode(line, year=2024)) is Record
    ]
    assert [record.message for record in records] == [head.message for head in heads]


def test_an_unfinished_traceback_is_held_and_a_finished_one_is_not() -> None:
    head = b"[2024-01-11 14:21:03,806] kopf.objects         [ERROR   ] [ns/x] failed\n"
    frames = b'Traceback (most recent call last):\n  File "/app/h.py", line 1, in f\n'
    assert incomplete_tail(KLOG + head + frames, LIMIT) == len(KLOG)
    done = head + frames + b"    g()\nValueError: bad\n"
    assert incomplete_tail(KLOG + done, LIMIT) == -1
    # An empty line after the exception: a chain is being written.
    assert incomplete_tail(KLOG + done + b"\n", LIMIT) == len(KLOG)
    # The line about to begin a traceback holds the line before it.
    assert incomplete_tail(KLOG + head, LIMIT, b"Traceb") == len(KLOG)
    assert incomplete_tail(KLOG + head, LIMIT, b"[2024-") == -1


def test_a_java_stack_at_the_end_of_a_read_is_held_only_when_it_goes_on() -> None:
    head, stack = LOGBACK.split(b"\n", 1)
    block = head + b"\n" + stack[: stack.index(b"Caused")]
    assert incomplete_tail(block, LIMIT) == -1  # its writer wrote it whole: no waiting
    assert incomplete_tail(block, LIMIT, b"Caused b") == 0
    assert incomplete_tail(block, LIMIT, b"\t... 2") == 0
    # The exception line is in, its first frame begun: the line and the exception are held.
    first = head + b"\n" + b"java.lang.IllegalStateException: boom\n"
    assert incomplete_tail(KLOG + first, LIMIT, b"\tat com.") == len(KLOG)


def test_stack_records_are_bounded() -> None:
    frame = b"\tat com.example.Deep.recurse(Deep.java:1)\n"
    log = b"2024-01-11 14:21:03 ERROR X:1 - deep\njava.lang.StackOverflowError\n" + frame * 2000
    spans_found = spans(log, LIMIT)
    assert spans_found[0][0] == 0
    assert spans_found[0][1] - spans_found[0][0] <= LIMIT
    assert all(
        type(decode(line, year=2024)) is not Record
        for line in select_lines(log, None, LIMIT).candidates[1:]
    )


def test_a_traceback_header_alone_or_past_the_limit_leaves_the_line_before_alone() -> None:
    # A header with nothing after it is no stack; and a line and stack past the byte limit are
    # not joined (the line stays a line of its own, within the limit).
    block = b"before\nTraceback (most recent call last):\nafter\n"
    assert spans(block, LIMIT) == []
    long_head = b"x" * 50 + b"\n" + b"java.lang.Error: e\n\tat a.B.c(B.java:1)\n"
    found = spans(long_head, 60)
    assert found == [(51, len(long_head) - 1)]  # the stack alone, within 60 bytes
    assert select_lines(long_head, None, 60).candidates[0] == b"x" * 50
