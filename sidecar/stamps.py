"""Lines of a pod log stream read with `timestamps=true`, and where to resume it.

The kubelet prefixes every line with its RFC 3339 timestamp (nanoseconds) and a space. That
timestamp is the line's identity: within one container's log it never goes backwards, so "every
line up to the last one processed" is a number plus, for the rare lines sharing that exact
nanosecond, their digests. `sinceTime` takes whole seconds, so a resumed stream replays part of a
second; `ResumeFilter` skips what was already processed and notices when the replay does not
reach back to the last processed line (the kubelet no longer has it: rotated away), which is a
gap that cannot be closed.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

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


@dataclass(slots=True)
class ResumeFilter:
    """Admits each line once, across reconnects and restarts of the sidecar.

    `reconnect()` is called before each new stream that resumes from `stamp`: until the stream
    shows a line at or before `stamp` (proof that it reaches back far enough), the first new
    line is a possible gap, which `admit` reports once.
    """

    stamp: int = 0
    seen: set[str] = field(default_factory=set)
    #: A resumed stream has not yet shown a line at or before `stamp`.
    _unanchored: bool = False

    @classmethod
    def from_position(cls, position: PodLogPosition) -> ResumeFilter:
        return cls(position.stamp, set(position.seen))

    def reconnect(self) -> None:
        """A new stream starts at `stamp`'s second (a first read has nothing to prove)."""
        self._unanchored = self.stamp != 0

    def admit(self, line: StampedLine) -> tuple[bool, bool]:
        """(process it, a gap was found before it)."""
        if line.stamp < self.stamp:
            self._unanchored = False
            return False, False
        key = digest(line.line)
        if line.stamp == self.stamp:
            if key in self.seen:
                self._unanchored = False
                return False, False
            self.seen.add(key)
            gap, self._unanchored = self._unanchored, False
            return True, gap
        gap, self._unanchored = self._unanchored, False
        self.stamp = line.stamp
        self.seen = {key}
        return True, gap

    def position(
        self, container: str, container_id: str = "", restart_count: int = 0
    ) -> PodLogPosition:
        """The checkpointable state once every admitted line is recorded."""
        return PodLogPosition(
            container, container_id, restart_count, self.stamp, tuple(sorted(self.seen))
        )
