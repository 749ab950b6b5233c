"""Live log sources (engines, asyncio): they read bytes and hand complete lines to a decoder.

Each source frames its bytes into blocks of complete lines with `scan.LineFramer` and puts them on
a bounded queue. What a source does when that queue is full is its backpressure: the file source
simply waits (its lines stay on disk), a socket connection stops being read (TCP flow control).
"""

from __future__ import annotations

from dataclasses import dataclass

from sidecar.model import FilePosition, PodLogPosition


@dataclass(frozen=True, slots=True)
class Block:
    """Complete lines (each ending in a newline) from one source, for the decoder."""

    data: bytes
    #: Lines the framer dropped as too long before they reached `data`.
    too_long: int
    #: `time.monotonic()` when the bytes were read: the start of the line-to-Event latency.
    read_at: float
    #: File sources: every file's position once `data` is recorded; None for sockets.
    positions: tuple[FilePosition, ...] | None = None
    #: The pod log source: its position once `data` is recorded; None for the others.
    pod_log: PodLogPosition | None = None
    #: The pod log source: the kubelet's time of the block's last line (seconds since the
    #: epoch), the time of the block's lines that carry none of their own.
    stamp_time: float | None = None
