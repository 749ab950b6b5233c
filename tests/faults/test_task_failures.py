"""A task that fails at start-up ends the process with exit 1 in time; a bad checkpoint does not.

Before these were fixed, a file source failing right after its first block (a checkpoint with
offset -1 made its first read fail) left the decoder's cancellation swallowed by Python 3.11's
`asyncio.wait_for`: the drain waited forever, SIGTERM was ignored, and `/healthz` and `/readyz`
kept answering 200.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from sidecar.sources.followed import fingerprint
from tests.daemon_support import Sidecar, append, phase_lines, wait_for, write_rules

DRAIN_SECONDS = 2.0
#: The drain deadline, the shutdown's grace after it (`sidecar.daemon.service._SHUTDOWN_GRACE`), and
#: a margin for a busy machine.
EXIT_BOUND = DRAIN_SECONDS + 5.0 + 5.0
LINES = 20


def dry_run_args(tmp_path: Path, pattern: str) -> list[str]:
    return [
        "--rules",
        str(write_rules(tmp_path)),
        "--dry-run",
        "--file",
        pattern,
        "--poll-interval",
        "0.1",
        "--drain-seconds",
        str(DRAIN_SECONDS),
        "--spam-burst",
        "100000",
        "--aggregate-max",
        "100000",
    ]


def corrupt_checkpoint(log: Path, **values: object) -> Path:
    """A checkpoint for `log` (right inode and first bytes) with `values` replacing its own."""
    data, info = log.read_bytes(), log.stat()
    entry = {
        "path": str(log),
        "device": info.st_dev,
        "inode": info.st_ino,
        "fingerprint": fingerprint(data[:256]),
        "fingerprint_size": min(len(data), 256),
        "offset": len(data),
        **values,
    }
    path = log.parent / ".event-sidecar-checkpoint.json"
    path.write_text(json.dumps({"version": 1, "files": [entry], "transitions": []}))
    return path


@pytest.mark.parametrize(
    "values",
    [{"offset": -1}, {"fingerprint_size": 1 << 40}, {"offset": "0"}, {"inode": None}],
    ids=["negative-offset", "huge-fingerprint", "string-offset", "null-inode"],
)
def test_a_malformed_checkpoint_is_ignored_and_the_log_read_from_the_start(
    tmp_path: Path, values: dict[str, object]
) -> None:
    log = tmp_path / "app.log"
    append(log, phase_lines("ns", LINES))
    corrupt_checkpoint(log, **values)
    process = Sidecar(dry_run_args(tmp_path, str(log)), tmp_path)
    try:
        process.start()
        wait_for(
            lambda: process.metric("event_sidecar_events_emitted_total") == LINES,
            f"{LINES} Events",
            timeout=20,
        )
        assert "malformed checkpoint" in process.stderr()
        assert process.ready()
        assert process.metric("event_sidecar_events_dropped_total") == 0
        began = time.monotonic()
        assert process.terminate(timeout=EXIT_BOUND) == 0
        assert time.monotonic() - began < EXIT_BOUND
    finally:
        process.close()


def test_an_io_error_on_an_early_read_ends_the_process_with_1_within_the_deadline(
    tmp_path: Path,
) -> None:
    log = tmp_path / "app.log"
    append(log, phase_lines("ns", LINES))
    process = Sidecar(dry_run_args(tmp_path, str(tmp_path / "*.log")), tmp_path)
    try:
        process.start()
        wait_for(
            lambda: process.metric("event_sidecar_events_emitted_total") == LINES,
            f"{LINES} Events",
            timeout=20,
        )
        # Every read of the sidecar's own /proc/self/mem at offset 0 fails with EIO: a real I/O
        # error on the first read of a newly found file, while the lines keep coming.
        (tmp_path / "zz.log").symlink_to("/proc/self/mem")
        append(log, phase_lines("ns", LINES, start=LINES))
        began = time.monotonic()
        assert process.wait(timeout=EXIT_BOUND) == 1
        assert time.monotonic() - began < EXIT_BOUND
        assert "task file-source stopped unexpectedly" in process.stderr()
        assert "Input/output error" in process.stderr()
    finally:
        process.close()
