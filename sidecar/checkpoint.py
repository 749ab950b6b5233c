"""Checkpoints: where each log file or pod log was read up to, and the transition state with it.

Both are saved in one JSON document, written atomically (a temporary file in the same directory,
fsync, `os.replace`, fsync of the directory), so that after any crash the file holds either the
previous checkpoint or the new one, never a mix: the offsets and the transition state always agree.

A checkpoint is a cache. A missing, unreadable or malformed one is logged and ignored; the daemon
then starts as configured for a first start.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from sidecar.model import FilePosition, PodLogPosition

log = logging.getLogger(__name__)

VERSION = 1


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What is saved: every followed file's position and the transition state at that point."""

    files: tuple[FilePosition, ...] = ()
    #: `TransitionTracker.export()` at the same point of the stream as the offsets.
    transitions: tuple[tuple[str, ...], ...] = ()
    #: Where each container log read through the pod log API is processed up to.
    pod_logs: tuple[PodLogPosition, ...] = ()

    def to_json(self) -> bytes:
        """The versioned JSON document."""
        return orjson.dumps(
            {
                "version": VERSION,
                "files": [asdict(position) for position in self.files],
                "transitions": [list(row) for row in self.transitions],
                "pod_logs": [asdict(position) for position in self.pod_logs],
            }
        )


def write_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Replace `path` with `checkpoint` atomically and durably.

    Raises:
        OSError: the directory is not writable or the disk is full; the old file is intact.
    """
    data = memoryview(checkpoint.to_json())
    # A unique name per write, so two writes can never interleave in one temporary file.
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    temporary = Path(name)
    try:
        try:
            while data:  # os.write may write less than asked, e.g. on a nearly full volume
                data = data[os.write(fd, data) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    # The rename itself must survive a power cut too.
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def remove_temporaries(path: Path) -> None:
    """Remove temporary files that a killed process left beside the checkpoint at `path`."""
    for temporary in path.parent.glob(f".{path.name}.*.tmp"):
        temporary.unlink(missing_ok=True)


def read_checkpoint(path: Path) -> Checkpoint | None:
    """The checkpoint at `path`, or None when there is none or it cannot be used."""
    try:
        document = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, orjson.JSONDecodeError) as error:
        log.warning("ignoring unreadable checkpoint %s: %s", path, error)
        return None
    try:
        return _parse(document)
    except (TypeError, ValueError, KeyError) as error:
        log.warning("ignoring malformed checkpoint %s: %s", path, error)
        return None


def _parse(document: Any) -> Checkpoint:
    """Raises TypeError, ValueError or KeyError when `document` is not a checkpoint."""
    if not isinstance(document, dict) or document.get("version") != VERSION:
        raise ValueError(f"not a version {VERSION} checkpoint")
    files = tuple(
        FilePosition(
            path=str(entry["path"]),
            device=int(entry["device"]),
            inode=int(entry["inode"]),
            fingerprint=str(entry["fingerprint"]),
            fingerprint_size=int(entry["fingerprint_size"]),
            offset=int(entry["offset"]),
        )
        for entry in document.get("files", [])
    )
    transitions = tuple(
        tuple(str(value) for value in row)
        for row in document.get("transitions", [])
        if isinstance(row, list)
    )
    pod_logs = tuple(
        PodLogPosition(
            container=str(entry["container"]),
            container_id=str(entry["container_id"]),
            restart_count=int(entry["restart_count"]),
            stamp=int(entry["stamp"]),
            seen=tuple(str(key) for key in entry["seen"]),
        )
        for entry in document.get("pod_logs", [])
    )
    return Checkpoint(files, transitions, pod_logs)
