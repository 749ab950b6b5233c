"""Lines of a pod log stream read with `timestamps=true`, and where to resume it.

The kubelet prefixes every line with its RFC 3339 timestamp (nanoseconds) and a space. Those
timestamps are not in order: the runtime stamps stdout and stderr separately, so interleaved
streams can go backwards by microseconds (more when the node is busy). A line's identity is its
timestamp and its content; where it is in the stream is only its order.

`sinceTime` takes whole seconds, and the kubelet sends every line of the log stamped at or after
it, in the log's order. So a stream resumed at a second before the last recorded line begins with
the recorded lines stamped since then, in order, and then the new ones: `ResumeFilter` keeps the
identities of those recent lines, skips them while the replay shows them, and from the first line
it has not recorded on lets everything through. A live stream is never filtered. Resuming
`SLACK` before the latest timestamp lets a line stamped a little earlier than one already recorded,
but written after it, come back too. A replay that shows none of the recorded lines does not reach
back to them (the kubelet rotated them away): a gap that cannot be closed.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from sidecar.model import PodLogPosition

NANOSECONDS = 1_000_000_000

_STAMP = re.compile(rb"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d) ")


@dataclass(frozen=True, slots=True)
class StampedLine:
    """One line of the stream: the kubelet's time and the controller's own line."""

    #: Nanoseconds since the epoch.
    stamp: int
    #: The line as the controller wrote it, with its newline.
    line: bytes


def split_stamp(line: bytes) -> StampedLine | None:
    """`b"2026-11-28T17:32:10.123456789Z text\\n"` -> (stamp, `b"text\\n"`); None without one."""
    match = _STAMP.match(line)
    if match is None:
        return None
    seconds_text, fraction, zone = match.groups()
    zone_text = "+00:00" if zone == b"Z" else zone.decode()
    try:
        moment = datetime.fromisoformat(seconds_text.decode() + zone_text)
    except ValueError:
        return None
    nanos = int(fraction.ljust(9, b"0")) if fraction else 0
    return StampedLine(int(moment.timestamp()) * NANOSECONDS + nanos, line[match.end() :])


def format_since(stamp: int) -> str:
    """The `sinceTime` that replays the whole second of `stamp` (RFC 3339, whole seconds, UTC)."""
    moment = datetime.fromtimestamp(stamp // NANOSECONDS, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def digest(line: bytes) -> str:
    """A short, stable identity for a line's content (the stamp is the rest of its identity)."""
    return hashlib.blake2b(line, digest_size=8).hexdigest()


def line_key(line: StampedLine) -> str:
    """A line's identity: `<stamp>:<digest>`, as a checkpoint keeps it."""
    return f"{line.stamp}:{digest(line.line)}"


#: How far (nanoseconds) a line's timestamp may be behind the latest recorded one and still be
#: read after a resume. Inversions between stdout and stderr are microseconds; a second covers a
#: runtime stalled between stamping a line and writing it, at the cost of keeping the identities
#: of one to two seconds of lines.
SLACK: Final = NANOSECONDS
#: At most this many recent identities are kept (memory, and the checkpoint's size). Past it, at
#: more than about 30,000 lines a second, a resumed stream may hand the oldest of them over again
#: (an Event already written: the apiserver answers 409), never lose one.
MAX_RECENT: Final = 65_536


def _floor_second(stamp: int) -> int:
    return stamp // NANOSECONDS * NANOSECONDS


@dataclass(slots=True)
class ResumeFilter:
    """Admits each line once, across reconnects and restarts of the sidecar.

    `record` each line once it is handed over; `reconnect()` before each stream that resumes at
    `since()`; `admit` each line the stream shows; `restart()` before a stream that starts at the
    log's beginning (a new container instance, a log that was truncated).
    """

    #: The latest timestamp recorded (nanoseconds since the epoch); 0 before any.
    stamp: int = 0
    #: (stamp, `line_key`) of the recorded lines stamped at or after `since()`, in stream order.
    recent: deque[tuple[int, str]] = field(default_factory=deque)
    #: What the resumed stream should show again before anything new.
    _replay: Counter[str] = field(default_factory=Counter)
    #: A checkpoint of an earlier version, which kept the lines stamped exactly `stamp` only:
    #: lines stamped before this are taken as read during the replay.
    _before: int = 0
    #: A resumed stream has not shown any recorded line yet.
    _unanchored: bool = False

    @classmethod
    def from_position(cls, position: PodLogPosition) -> ResumeFilter:
        resume = cls(position.stamp)
        for key in position.seen:
            stamp, colon, _ = key.partition(":")
            if colon and stamp.isdigit():
                resume.recent.append((int(stamp), key))
            else:  # an earlier version's digest of a line stamped exactly `stamp`
                resume.recent.append((position.stamp, f"{position.stamp}:{key}"))
                resume._before = position.stamp
        return resume

    def since(self) -> int | None:
        """Where a resumed stream starts (`format_since` makes it a whole second); None: at the
        log's beginning."""
        return max(0, self.stamp - SLACK) if self.stamp else None

    def reconnect(self) -> None:
        """A new stream starts at `since()`: it shows the recent lines again first."""
        self._replay = Counter(key for _, key in self.recent)
        self._unanchored = bool(self._replay)

    def restart(self) -> None:
        """A new stream starts at the log's beginning, with nothing recorded from it."""
        self.stamp, self._before, self._unanchored = 0, 0, False
        self.recent.clear()
        self._replay.clear()

    @property
    def replaying(self) -> bool:
        """A resumed stream has not shown its first new line yet."""
        return bool(self._replay) or self._before != 0

    def admit(self, line: StampedLine) -> tuple[bool, bool]:
        """(process it, a gap was found before it). Not processed: recorded already."""
        if not self.replaying:
            return True, False
        key = line_key(line)
        if self._replay[key] > 0:
            self._replay[key] -= 1
            self._unanchored = False
            return False, False
        if line.stamp < self._before:
            self._unanchored = False
            return False, False
        # The replay of what was recorded is over: this line and every one after it are new.
        gap, self._unanchored = self._unanchored, False
        self._replay.clear()
        self._before = 0
        return True, gap

    def record(self, stamp: int, key: str) -> None:
        """A line admitted earlier is handed over: a resumed stream will skip it."""
        self.stamp = max(self.stamp, stamp)
        recent = self.recent
        recent.append((stamp, key))
        oldest = _floor_second(self.stamp - SLACK)
        while recent and (recent[0][0] < oldest or len(recent) > MAX_RECENT):
            recent.popleft()

    def position(
        self, container: str, container_id: str = "", restart_count: int = 0
    ) -> PodLogPosition:
        """The checkpointable state once every recorded line's Events are recorded."""
        return PodLogPosition(
            container, container_id, restart_count, self.stamp, tuple(k for _, k in self.recent)
        )
