"""Multi-line records: where they end, and that framing and the pre-filter never split one."""

from __future__ import annotations

import pytest

from sidecar.core.lines.multiline import (
    INCOMPLETE,
    MAX_RECORD_LINES,
    incomplete_tail,
    record_end,
    spans,
)
from sidecar.core.lines.scan import LineFramer, select_lines

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
