"""Checkpoints: where each log file or pod log was read up to, and the transition and correlation
state that goes with it.

All are saved in one JSON document, written atomically (a temporary file in the same directory,
fsync, `os.replace`, fsync of the directory), so that after any crash the file holds either the
previous checkpoint or the new one, never a mix: the offsets and the states always agree. The
correlation state (which Event each repeat PATCHes, and at which count) is what makes a line read
again after a crash PATCH the same Event to the same count rather than start a second one; in
events.k8s.io/v1 mode the series state does the same for series, and also carries the counts
observed but not written yet (a series' later occurrences wait for the heartbeat), so a crash
loses none of them. A checkpoint without it (written before it existed, or in core/v1 mode)
loads with no series.

A checkpoint is a cache. A missing, unreadable or malformed one is logged and ignored; the daemon
then starts as configured for a first start. Malformed includes values of the wrong type and values
no writer produces (a negative offset, a fingerprint of more than `MAX_FINGERPRINT_BYTES`): used,
they would fail the file source at every start, a crash loop.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from sidecar.core.correlate import CorrelationState
from sidecar.core.events.series import SeriesRecord, parse_series_row, series_row
from sidecar.model import FilePosition, PodLogPosition

log = logging.getLogger(__name__)

VERSION = 1
#: More first bytes than any fingerprint setting reads; a larger size is not ours.
MAX_FINGERPRINT_BYTES = 1 << 20
_MAX_OFFSET = (1 << 63) - 1


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What is saved: every followed file's position and the transition state at that point."""

    files: tuple[FilePosition, ...] = ()
    #: `TransitionTracker.export()` at the same point of the stream as the offsets.
    transitions: tuple[tuple[str, ...], ...] = ()
    #: `Correlator.export()` once every Event before the offsets is recorded.
    correlation: CorrelationState = field(default_factory=CorrelationState)
    #: Where each container log read through the pod log API is processed up to.
    pod_logs: tuple[PodLogPosition, ...] = ()
    #: `SeriesCache.export()` at the same point as `correlation` (events.k8s.io/v1 mode).
    series: tuple[SeriesRecord, ...] = ()
    #: Per tracker, what its states in `transitions` mean (`TransitionTracker.meanings`); None
    #: in a checkpoint written before they were saved.
    trackers: tuple[tuple[str, str], ...] | None = None

    def to_json(self) -> bytes:
        """The versioned JSON document."""
        return orjson.dumps(
            {
                "version": VERSION,
                "files": [asdict(position) for position in self.files],
                "transitions": [list(row) for row in self.transitions],
                "correlation": {
                    "observed": self.correlation.observed,
                    "similar": self.correlation.similar,
                },
                "pod_logs": [asdict(position) for position in self.pod_logs],
                "series": [series_row(record) for record in self.series],
                **({} if self.trackers is None else {"trackers": dict(self.trackers)}),
            }
        )


def write_checkpoint(path: Path, checkpoint: Checkpoint | bytes) -> None:
    """Replace `path` with `checkpoint` (or its `to_json()`) atomically and durably.

    Raises:
        OSError: the directory is not writable or the disk is full; the old file is intact.
    """
    data = memoryview(checkpoint if isinstance(checkpoint, bytes) else checkpoint.to_json())
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
            path=_text(entry, "path"),
            device=_number(entry, "device", _MAX_OFFSET),
            inode=_number(entry, "inode", _MAX_OFFSET),
            fingerprint=_text(entry, "fingerprint"),
            fingerprint_size=_number(entry, "fingerprint_size", MAX_FINGERPRINT_BYTES),
            offset=_number(entry, "offset", _MAX_OFFSET),
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
            container=_text(entry, "container"),
            container_id=_text(entry, "container_id"),
            restart_count=_number(entry, "restart_count", _MAX_OFFSET),
            stamp=_number(entry, "stamp", _MAX_OFFSET),
            seen=tuple(str(key) for key in entry["seen"]),
        )
        for entry in document.get("pod_logs", [])
    )
    return Checkpoint(
        files,
        transitions,
        correlation=_parse_correlation(document.get("correlation")),
        pod_logs=pod_logs,
        series=_parse_series(document.get("series")),
        trackers=_parse_trackers(document.get("trackers")),
    )


def _parse_trackers(section: Any) -> tuple[tuple[str, str], ...] | None:
    """What the trackers' states meant; None when the checkpoint does not say (then its states
    are trusted, as before meanings were saved). Malformed entries are left out, so their
    trackers' states are dropped: a first observation rather than a wrong comparison."""
    if section is None:
        return None
    if not isinstance(section, dict):
        return ()
    return tuple(
        (name, meaning)
        for name, meaning in section.items()
        if isinstance(name, str) and isinstance(meaning, str)
    )


def _text(entry: Any, key: str) -> str:
    """`entry[key]`, which must be a string."""
    value = entry[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} is not a string: {value!r}")
    return value


def _number(entry: Any, key: str, largest: int) -> int:
    """`entry[key]`, which must be an integer from 0 to `largest` (JSON true is no number)."""
    value = entry[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{key} is not an integer: {value!r}")
    if not 0 <= value <= largest:
        raise ValueError(f"{key} out of range: {value}")
    return value


def _parse_correlation(section: Any) -> CorrelationState:
    """The correlation state; malformed rows are skipped (at worst a repeat starts a new Event)."""
    if not isinstance(section, dict):
        return CorrelationState()
    observed = []
    for row in section.get("observed") or ():
        match row:
            case [str(key), str(name), int(count), int() | float() as first] if count > 0:
                observed.append((key, name, count, float(first)))
    similar = []
    for row in section.get("similar") or ():
        match row:
            case [str(key), int() | float() as last_seen, list(messages)] if all(
                isinstance(message, str) for message in messages
            ):
                similar.append((key, float(last_seen), tuple(messages)))
    return CorrelationState(tuple(observed), tuple(similar))


def _parse_series(section: Any) -> tuple[SeriesRecord, ...]:
    """The series state; a malformed row is skipped with a warning (that series' repeats after
    the restart start a new Event, and counts it held that were not written are lost)."""
    if not isinstance(section, list):
        return ()
    records = []
    for row in section:
        try:
            records.append(parse_series_row(row))
        except (TypeError, ValueError, KeyError) as error:
            log.warning("ignoring a malformed series in the checkpoint: %s", error)
    return tuple(records)
