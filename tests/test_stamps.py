"""The pure parts of the pod log source: the kubelet's timestamp prefix and resuming exactly."""

from __future__ import annotations

from datetime import UTC, datetime

from sidecar.model import PodLogPosition
from sidecar.stamps import NANOSECONDS, ResumeFilter, StampedLine, format_since, split_stamp

SECOND = int(datetime(2026, 11, 28, 17, 32, 10, tzinfo=UTC).timestamp()) * NANOSECONDS


def test_split_stamp_nanoseconds_and_line() -> None:
    stamped = split_stamp(b'2026-11-28T17:32:10.123456789Z {"msg":"x"}\n')
    assert stamped == StampedLine(SECOND + 123456789, b'{"msg":"x"}\n')


def test_split_stamp_short_fraction_and_offset() -> None:
    # RFC3339Nano drops trailing zeros; a runtime may write a zone offset.
    assert split_stamp(b"2026-11-28T17:32:10.5Z a\n") == StampedLine(SECOND + 500_000_000, b"a\n")
    east = split_stamp(b"2026-11-28T19:32:10+02:00 b\n")
    assert east == StampedLine(SECOND, b"b\n")


def test_split_stamp_refuses_unstamped_lines() -> None:
    assert split_stamp(b"unable to retrieve container logs\n") is None
    assert split_stamp(b"2026-13-28T17:32:10Z impossible month\n") is None


def test_format_since_is_the_whole_second() -> None:
    assert format_since(SECOND + 999_999_999) == "2026-11-28T17:32:10Z"


def line(offset: int, text: bytes) -> StampedLine:
    return StampedLine(SECOND + offset, text)


def test_first_read_admits_everything_once() -> None:
    resume = ResumeFilter()
    assert [resume.admit(line(n, b"x\n")) for n in (1, 2, 3)] == [(True, False)] * 3


def test_replayed_second_is_skipped_and_same_nanosecond_lines_are_kept_apart() -> None:
    resume = ResumeFilter()
    for item in (line(1, b"a\n"), line(5, b"b\n"), line(5, b"c\n")):
        resume.admit(item)
    position = resume.position("manager", "id-1", 0)
    assert position == PodLogPosition(
        "manager", "id-1", 0, SECOND + 5, tuple(sorted(position.seen))
    )
    assert len(position.seen) == 2
    # A restart of the sidecar: a fresh filter from the checkpoint, the stream from the second.
    again = ResumeFilter.from_position(position)
    again.reconnect()
    replay = [line(1, b"a\n"), line(5, b"b\n"), line(5, b"c\n"), line(5, b"d\n"), line(9, b"e\n")]
    assert [again.admit(item)[0] for item in replay] == [False, False, False, True, True]


def test_a_resumed_stream_that_does_not_reach_back_is_one_gap() -> None:
    resume = ResumeFilter()
    resume.admit(line(5, b"a\n"))
    resume.reconnect()
    # The kubelet rotated the file: the stream starts after the last line read.
    assert resume.admit(line(7 * NANOSECONDS, b"late\n")) == (True, True)
    assert resume.admit(line(8 * NANOSECONDS, b"later\n")) == (True, False)


def test_a_resumed_stream_that_reaches_back_is_no_gap() -> None:
    resume = ResumeFilter()
    resume.admit(line(5, b"a\n"))
    resume.reconnect()
    assert resume.admit(line(5, b"a\n")) == (False, False)
    assert resume.admit(line(6, b"b\n")) == (True, False)
