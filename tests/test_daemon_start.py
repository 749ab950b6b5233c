"""`--start` is for a first start only: a restart with a checkpoint resumes from it."""

from __future__ import annotations

import time
from pathlib import Path

from tests.controlplane import ControlPlane
from tests.daemon_support import (
    append,
    event_messages,
    phase_line,
    run_args,
    sidecar,
    wait_for,
)


def test_start_end_skips_the_old_lines_at_a_first_start_only(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    log = tmp_path / "controller.log"
    append(log, [phase_line(namespace, "before-first-start", "Ready")])
    args = run_args(control_plane, tmp_path, "--file", str(log))

    def shown() -> list[str]:
        return [name for name, _ in event_messages(control_plane, namespace)]

    with sidecar([*args, "--start", "end"], tmp_path) as first:
        append(log, [phase_line(namespace, "while-running", "Ready")])
        wait_for(lambda: shown() == ["while-running"], "the Event of the new line")
        assert first.terminate() == 0
    append(log, [phase_line(namespace, "while-down", "Ready")])
    # `end` again: with a checkpoint, the restart resumes from it and reads what was logged
    # while the sidecar was down.
    with sidecar([*args, "--start", "end"], tmp_path) as second:
        wait_for(lambda: shown() == ["while-down", "while-running"], "the line logged while down")
        assert second.terminate() == 0
    # `beginning` does not make a restart write everything again either.
    with sidecar([*args, "--start", "beginning"], tmp_path) as third:
        append(log, [phase_line(namespace, "after-restart", "Ready")])
        wait_for(lambda: "after-restart" in shown(), "the Event of the last line")
        time.sleep(0.5)
        assert third.metric("event_sidecar_events_already_written_total") == 0
        assert third.terminate() == 0
    assert shown() == ["after-restart", "while-down", "while-running"]
