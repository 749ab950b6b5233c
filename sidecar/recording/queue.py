"""What the Event queue carries from the sources' decoders to the poster, in order.

`Posting`s are Events to write, `Mark`s checkpoints to commit once everything before them is
written, `Tick`s the series writes not tied to a line (`sidecar.recording.poster` says how each
is handled).
"""

from __future__ import annotations

from dataclasses import dataclass

from sidecar.model import EventSpec
from sidecar.recording.recorder import TickKind
from sidecar.runtime.checkpoints import Checkpoint


@dataclass(frozen=True, slots=True)
class Posting:
    """An Event to write, and when its line was read."""

    spec: EventSpec
    read_at: float


@dataclass(slots=True)
class Mark:
    """Everything queued before this is written once it is reached: `checkpoint` may be saved."""

    checkpoint: Checkpoint
    #: Set by the poster when it commits the mark; until then the decoder queues no other, so
    #: a stalled API holds one snapshot of the transition state in the queue, not hundreds.
    reached: bool = False


@dataclass(frozen=True, slots=True)
class Tick:
    """Decide the recorder's writes not tied to a line (`Recorder.tick`) at this point."""

    kind: TickKind


QueueItem = Posting | Mark | Tick
