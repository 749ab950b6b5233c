"""The pure parts of the pod log source: the kubelet's timestamp prefix and resuming exactly."""

from __future__ import annotations

from datetime import UTC, datetime

from sidecar.core.lines.stamps import (
    NANOSECONDS,
    ResumeFilter,
    StampedLine,
    digest,
    format_since,
    line_key,
    split_stamp,
)
from sidecar.model import PodLogPosition

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


def read(resume: ResumeFilter, *lines: StampedLine) -> list[bool]:
    """Admit each line and record the admitted ones, as the source does once it hands them over."""
    admitted = []
    for item in lines:
        admit, _ = resume.admit(item)
        if admit:
            resume.record(item.stamp, line_key(item))
        admitted.append(admit)
    return admitted


def test_first_read_admits_everything_once() -> None:
    resume = ResumeFilter()
    assert [resume.admit(line(n, b"x\n")) for n in (1, 2, 3)] == [(True, False)] * 3


def test_a_live_stream_is_never_filtered_even_when_stamps_go_backwards() -> None:
    resume = ResumeFilter()
    items = (line(5, b"out\n"), line(3, b"err\n"), line(3, b"err\n"), line(5, b"out\n"))
    assert read(resume, *items) == [True] * 4
    assert resume.stamp == SECOND + 5


def test_a_replay_skips_exactly_what_was_recorded_and_nothing_after() -> None:
    resume = ResumeFilter()
    read(resume, line(5, b"a\n"), line(3, b"b\n"), line(5, b"c\n"))
    position = resume.position("manager", "id-1", 0)
    assert position.stamp == SECOND + 5
    assert len(position.seen) == 3
    # A restart of the sidecar: a fresh filter from the checkpoint, the stream from a second
    # before the last line, in the log's order: what was recorded, then what is new, whatever
    # its stamp (one stamped before everything read, one the same line at the same nanosecond).
    again = ResumeFilter.from_position(position)
    assert again.since() == SECOND - NANOSECONDS + 5
    again.reconnect()
    replay = [line(5, b"a\n"), line(3, b"b\n"), line(5, b"c\n"), line(2, b"d\n"), line(3, b"b\n")]
    assert [again.admit(item) for item in replay] == [(False, False)] * 3 + [(True, False)] * 2
    assert not again.replaying


def test_lines_older_than_the_slack_are_forgotten() -> None:
    resume = ResumeFilter()
    read(resume, line(0, b"old\n"), line(3 * NANOSECONDS, b"new\n"))
    assert [key for _, key in resume.recent] == [line_key(line(3 * NANOSECONDS, b"new\n"))]


def test_a_resumed_stream_that_does_not_reach_back_is_one_gap() -> None:
    resume = ResumeFilter()
    read(resume, line(5, b"a\n"))
    resume.reconnect()
    # The kubelet rotated the file: the stream starts after the last line read.
    assert resume.admit(line(7 * NANOSECONDS, b"late\n")) == (True, True)
    assert resume.admit(line(8 * NANOSECONDS, b"later\n")) == (True, False)


def test_a_resumed_stream_that_reaches_back_is_no_gap() -> None:
    resume = ResumeFilter()
    read(resume, line(5, b"a\n"))
    resume.reconnect()
    assert resume.admit(line(5, b"a\n")) == (False, False)
    assert resume.admit(line(6, b"b\n")) == (True, False)


def test_a_restart_has_nothing_to_skip_and_no_gap_to_find() -> None:
    resume = ResumeFilter()
    read(resume, line(5, b"a\n"))
    resume.restart()
    resume.reconnect()
    assert resume.since() is None
    assert resume.admit(line(5, b"a\n")) == (True, False)


def test_a_checkpoint_of_an_earlier_version_resumes_as_it_did() -> None:
    # It kept the digests of the lines stamped exactly `stamp`, and skipped every line before.
    position = PodLogPosition("manager", "id-1", 0, SECOND + 5, (digest(b"b\n"),))
    resume = ResumeFilter.from_position(position)
    resume.reconnect()
    replay = [line(1, b"a\n"), line(5, b"b\n"), line(5, b"c\n"), line(2, b"d\n")]
    assert [resume.admit(item)[0] for item in replay] == [False, False, True, True]
