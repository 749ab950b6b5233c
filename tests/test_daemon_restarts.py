"""`kill -9` during a stream, several times: every transition Event exactly once.

Offsets are checkpointed only after the Events before them are written, so a killed sidecar
re-reads a little; the Events it writes again carry the names derived from their lines, which the
apiserver refuses as duplicates (409). `kubectl get events` must show each Event once, count 1.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from tests.controlplane import ControlPlane
from tests.daemon_support import (
    Sidecar,
    append,
    event_messages,
    events,
    expected_messages,
    phase_lines,
    wait_for,
    write_rules,
)

LINES = 240
OBJECTS = 4


def test_kill_9_and_restart_during_a_stream_loses_and_doubles_nothing(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    log = tmp_path / "controller.log"
    checkpoint = tmp_path / ".event-sidecar-checkpoint.json"
    args = [
        "--rules",
        str(write_rules(tmp_path)),
        "--kubeconfig",
        str(control_plane.kubeconfig),
        "--file",
        str(log),
        "--spam-burst",
        "100000",
        "--aggregate-max",
        "100000",
    ]
    lines = phase_lines(namespace, LINES, objects=OBJECTS)
    written = threading.Event()

    def write() -> None:
        for start in range(0, LINES, 6):
            if start == LINES // 2:
                # A rename rotation in the middle: a sidecar killed around it must still read
                # the rest of the old file, found again by its inode and first bytes.
                log.rename(tmp_path / "controller.log.1")
            append(log, lines[start : start + 6])
            time.sleep(0.1)
        written.set()

    process = Sidecar(args, tmp_path)
    writer = threading.Thread(target=write)
    try:
        process.start()
        writer.start()
        # A file nobody ever checkpointed and that rotates away while the sidecar is down cannot
        # be found again by anyone; so let the first run save one.
        wait_for(lambda: checkpointed_files(checkpoint), "a checkpoint of the log", timeout=20)
        kills = 0
        # Killed at varied moments: before the run's first checkpoint, and after a few.
        pauses = [0.2, 1.3, 0.6, 1.6]
        while not written.is_set() or kills < 3:
            time.sleep(pauses[kills % len(pauses)])
            process.kill()
            kills += 1
            process.start()
        writer.join(10)
        expected = sorted(expected_messages(LINES, objects=OBJECTS))
        wait_for(
            lambda: len(events(control_plane, namespace)) >= LINES, f"{LINES} Events", timeout=60
        )
        time.sleep(1.0)  # and no late duplicates
        got = event_messages(control_plane, namespace)
        assert got == expected
        assert {event["count"] for event in events(control_plane, namespace)} == {1}
        assert process.terminate() == 0
    finally:
        written.set()
        process.close()
    assert kills >= 3


def checkpointed_files(checkpoint: Path) -> int:
    """How many files the checkpoint records (0 before the first one; a start-up checkpoint may
    be written before the controller created its log)."""
    try:
        return len(json.loads(checkpoint.read_text()).get("files", []))
    except (OSError, ValueError):
        return 0
