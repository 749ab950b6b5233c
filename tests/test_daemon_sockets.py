"""`event-sidecar run` with the socket source, as a real process against the real control plane."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from tests.controlplane import ControlPlane
from tests.daemon_support import (
    event_messages,
    expected_messages,
    http_get,
    phase_line,
    phase_lines,
    run_args,
    sidecar,
    wait_for,
)


def test_lines_over_tcp_and_a_unix_socket_become_events(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    path = tmp_path / "log.sock"
    with sidecar(
        run_args(control_plane, tmp_path, "--tcp", "127.0.0.1:0", "--unix", str(path)), tmp_path
    ) as process:
        lines = phase_lines(namespace, 6, objects=2)
        with socket.create_connection(process.tcp_address()) as tcp:
            tcp.sendall(b"".join(lines[:3]))
        expected = sorted(expected_messages(6, objects=2))
        wait_for(lambda: len(event_messages(control_plane, namespace)) == 3, "3 Events")
        with socket.socket(socket.AF_UNIX) as unix:
            unix.connect(str(path))
            unix.sendall(b"".join(lines[3:]))
        wait_for(lambda: event_messages(control_plane, namespace) == expected, "6 Events")
        assert process.metric("event_sidecar_lines_read_total", source="socket") == 6
        assert process.terminate() == 0
    assert not path.exists()


def test_long_lines_garbage_and_clients_that_never_read_do_not_stop_it(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    args = run_args(control_plane, tmp_path, "--tcp", "127.0.0.1:0", "--max-line-bytes", "1000")
    with sidecar(args, tmp_path) as process:
        address = process.tcp_address()
        # A client that only sends (we never answer, it never reads) a line far over the limit.
        hog = socket.create_connection(address)
        hog.sendall(b"Observed status " * 100_000)
        # Garbage: random bytes, and a line that looks like a candidate but is broken JSON.
        with socket.create_connection(address) as garbage:
            garbage.sendall(os.urandom(200_000) + b'\n{"msg": "Observed status", \xff\xfe\n')
        hog.sendall(b"\n" + phase_line(namespace, "obj-0", "after-the-long-line"))
        wait_for(
            lambda: (
                event_messages(control_plane, namespace)
                == [("obj-0", "phase none -> after-the-long-line")]
            ),
            "the Event after the long line",
        )
        with socket.create_connection(address) as good:
            good.sendall(phase_line(namespace, "obj-1", "fine"))
        wait_for(lambda: len(event_messages(control_plane, namespace)) == 2, "a second Event")
        assert process.metric("event_sidecar_lines_too_long_total", source="socket") >= 1
        assert process.metric("event_sidecar_lines_undecodable_total", source="socket") >= 1
        assert http_get(process.url("/healthz"))[0] == 200
        assert process.ready()
        hog.close()
        assert process.terminate() == 0
