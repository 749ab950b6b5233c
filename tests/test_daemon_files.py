"""`event-sidecar run` on log files, as a real process against the real control plane."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest

from tests.conftest import plain_kubeconfig
from tests.controlplane import ControlPlane
from tests.daemon_support import (
    Sidecar,
    append,
    event_messages,
    events,
    expected_messages,
    http_get,
    phase_lines,
    run_args,
    sidecar,
    wait_for,
    write_rules,
)


@pytest.mark.parametrize("watch", ["inotify", "poll"])
def test_appended_lines_become_events_that_kubectl_shows(
    control_plane: ControlPlane, namespace: str, tmp_path: Path, watch: str
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "controller.log"
    args = run_args(control_plane, tmp_path, "--file", str(logs / "*.log"), "--watch", watch)
    with sidecar(args, tmp_path) as process:
        append(log, phase_lines(namespace, 3))
        wait_for(lambda: len(events(control_plane, namespace)) == 3, "3 Events")
        table = control_plane.kubectl("get", "events", "-n", namespace).stdout
        assert "PhaseChanged" in table
        assert "configmap/obj-0" in table
        assert "phase P1 -> P2" in table
        (event,) = [
            e for e in events(control_plane, namespace) if e["message"] == "phase none -> P0"
        ]
        assert event["source"] == {"component": "test-controller", "host": "sidecar-pod-0"}
        assert event["count"] == 1
        assert process.metric("event_sidecar_lines_read_total", source="file") == 3
        assert http_get(process.url("/healthz"))[0] == 200
        status, body = http_get(process.url("/readyz"))
        assert status == 200
        assert json.loads(body)["checks"] == {
            "sources": True,
            "sources_readable": True,
            "rules": True,
            "api": True,
        }
        assert process.terminate() == 0
    # Its own logs are JSON on stderr.
    assert all(record["level"] in ("info", "warning") for record in process.logs())
    assert any(record["msg"] == "stopped" for record in process.logs())


def test_rotation_of_both_kinds_mid_stream_loses_nothing(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "controller.log"
    lines = phase_lines(namespace, 60, objects=3)
    args = run_args(control_plane, tmp_path, "--file", str(log))
    with sidecar(args, tmp_path) as process:
        # rename + create, with the writer still writing to its old handle for a moment.
        with log.open("ab") as writer:
            writer.write(b"".join(lines[:5]))
            writer.flush()
            # A file that came and went between two scans is never seen, by any shipper.
            wait_for(
                lambda: process.metric("event_sidecar_lines_read_total", source="file") == 5,
                "the file to be followed",
            )
            writer.write(b"".join(lines[5:15]))
            writer.flush()
            log.rename(logs / "controller.log.1")
            writer.write(b"".join(lines[15:20]))
        append(log, lines[20:40])
        # copytruncate: only what was read before the truncation is safe (as for every shipper),
        # so wait for it, then copy, truncate and go on writing.
        wait_for(
            lambda: process.metric("event_sidecar_lines_read_total", source="file") == 40,
            "40 lines read",
        )
        shutil.copyfile(log, logs / "controller.log.2")
        with log.open("r+b") as stream:
            stream.truncate(0)
        append(log, lines[40:])
        expected = sorted(expected_messages(60, objects=3))
        wait_for(lambda: event_messages(control_plane, namespace) == expected, "60 Events")
        assert process.metric("event_sidecar_rotations_total", source="file", kind="rename") == 1
        assert process.metric("event_sidecar_rotations_total", source="file", kind="truncate") == 1
        assert process.terminate() == 0
    assert event_messages(control_plane, namespace) == expected


def test_sigterm_writes_queued_events_and_the_checkpoint(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    log = tmp_path / "controller.log"
    count = 400
    args = run_args(control_plane, tmp_path, "--file", str(log))
    with sidecar(args, tmp_path) as process:
        append(log, phase_lines(namespace, count, objects=5))
        wait_for(
            lambda: process.metric("event_sidecar_lines_read_total", source="file") == count,
            "the lines to be read",
            interval=0.01,
        )
        emitted = process.metric(
            "event_sidecar_events_emitted_total",
            reason="PhaseChanged",
            type="Normal",
            write="create",
        )
        assert process.terminate() == 0
    # Some were still queued at SIGTERM (each write is a round trip), and all were written.
    assert emitted < count
    assert len(events(control_plane, namespace)) == count
    checkpoint = json.loads((tmp_path / ".event-sidecar-checkpoint.json").read_text())
    (position,) = checkpoint["files"]
    assert position["offset"] == log.stat().st_size
    assert len(checkpoint["transitions"]) == 5


def test_events_past_the_drain_deadline_are_counted_and_read_again_next_time(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    log = tmp_path / "controller.log"
    count = 300
    args = run_args(control_plane, tmp_path, "--file", str(log), "--drain-seconds", "0.05")
    process = Sidecar(args, tmp_path)
    try:
        process.start()
        append(log, phase_lines(namespace, count, objects=3))
        wait_for(
            lambda: process.metric("event_sidecar_lines_read_total", source="file") == count,
            "the lines to be read",
            interval=0.01,
        )
        assert process.terminate() == 0
        (dropped,) = [
            r["dropped"] for r in process.logs() if r["msg"].startswith("drain deadline passed")
        ]
        assert dropped > 0
        assert len(events(control_plane, namespace)) < count
        # The checkpoint stayed behind the dropped Events: the next run writes them.
        process.start()
        expected = sorted(expected_messages(count, objects=3))
        wait_for(lambda: event_messages(control_plane, namespace) == expected, f"{count} Events")
        assert process.terminate() == 0
    finally:
        process.close()


def test_a_fatal_error_exits_non_zero_with_a_clear_message(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = Sidecar(
            [
                *run_args(control_plane, tmp_path, "--file", str(tmp_path / "x.log")),
                "--listen",
                f"127.0.0.1:{port}",
            ],
            tmp_path,
        )
        process.start(wait_ready=False)
        assert process.wait() == 1
    assert "cannot start" in process.stderr()
    assert "address already in use" in process.stderr().lower()


def test_readyz_says_when_the_api_is_unreachable(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    kubeconfig = plain_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{port}")
    args = [
        "--rules",
        str(write_rules(tmp_path)),
        "--kubeconfig",
        str(kubeconfig),
        "--file",
        str(tmp_path / "x.log"),
    ]
    process = Sidecar(args, tmp_path)
    try:
        process.start(wait_ready=False)
        process.port = wait_for(process._started, "the sidecar to start")

        def not_ready() -> dict[str, bool] | None:
            status, body = http_get(process.url("/readyz"))
            return json.loads(body)["checks"] if status == 503 else None

        checks = wait_for(not_ready, "/readyz to answer 503")
        assert checks == {"sources": True, "sources_readable": True, "rules": True, "api": False}
        assert http_get(process.url("/healthz"))[0] == 200
        assert process.terminate() == 0
    finally:
        process.close()


def test_its_own_log_is_never_read_back_as_input(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    """Even when stderr goes to a file that the patterns match."""
    log = tmp_path / "controller.log"
    own = str(tmp_path / "sidecar-*.stderr")  # where `Sidecar` sends stderr
    args = run_args(control_plane, tmp_path, "--file", own, "--file", str(log))
    with sidecar(args, tmp_path) as process:
        append(log, phase_lines(namespace, 2))
        wait_for(lambda: len(events(control_plane, namespace)) == 2, "2 Events")
        assert process.metric("event_sidecar_lines_read_total", source="file") == 2
        assert process.terminate() == 0
    assert '"msg":"started"' in process.stderr()
