"""Bounded memory under load: the API hangs, the log grows by hundreds of megabytes.

The file source pauses (its lines wait on disk), the socket source drops what it cannot queue and
counts it, and the sidecar's peak resident memory stays far below what was written. SIGTERM with
a hanging API still ends the process within the drain deadline, with exit code 0.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from sidecar.inject.settings import InjectSettings
from tests.conftest import plain_kubeconfig
from tests.daemon_support import Sidecar, append, phase_lines, wait_for, write_rules

MIB = 1024 * 1024


def peak_rss(pid: int) -> int:
    """Bytes: the process's peak resident set (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def injected_memory_limit() -> int:
    """Bytes: the memory limit the injector gives the sidecar container by default."""
    limit = InjectSettings().resources["limits"]["memory"]
    assert limit.endswith("Mi"), limit
    return int(limit.removesuffix("Mi")) * MIB


def test_a_hanging_api_and_a_flood_of_lines_keep_memory_bounded(tmp_path: Path) -> None:
    # An "apiserver" that accepts connections (in the kernel's backlog) and never answers.
    with socket.socket() as black_hole:
        black_hole.bind(("127.0.0.1", 0))
        black_hole.listen(1024)
        port = black_hole.getsockname()[1]
        kubeconfig = plain_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{port}")
        log = tmp_path / "controller.log"
        process = Sidecar(
            [
                "--rules",
                str(write_rules(tmp_path)),
                "--kubeconfig",
                str(kubeconfig),
                "--file",
                str(log),
                "--tcp",
                "127.0.0.1:0",
                "--drain-seconds",
                "2",
            ],
            tmp_path,
        )
        try:
            process.start(wait_ready=False)
            process.port = wait_for(process._started, "the sidecar to start")
            assert process.process is not None
            pid = process.process.pid
            baseline = peak_rss(pid)

            filler = b'{"level":"info","msg":"Reconciling","name":"x","n":%d}\n'
            block = b"".join(filler % i for i in range(10_000))  # about 0.5 MiB
            written = 0
            for round_ in range(300):
                append(log, phase_lines("ns", 20, start=round_ * 20))
                append(log, [block])
                written += len(block)
            with socket.create_connection(process.tcp_address()) as client:
                for round_ in range(100):
                    client.sendall(b"".join(phase_lines("ns", 20, start=100_000 + round_ * 20)))
                    client.sendall(block)
                    written += len(block)
            assert written > 190 * MIB

            def dropped() -> float:
                return process.metric("event_sidecar_events_dropped_total", cause="queue_full")

            wait_for(dropped, "socket Events dropped as queue_full")
            time.sleep(1.0)
            peak = peak_rss(pid)
            growth = peak - baseline
            assert growth < 64 * MIB, f"peak RSS grew by {growth / MIB:.0f} MiB"
            # The injected container's memory limit must hold the daemon under this load.
            assert peak < injected_memory_limit(), f"peak RSS {peak / MIB:.0f} MiB"
            # The file source paused instead: most of the file is not read yet.
            read = process.metric("event_sidecar_bytes_read_total", source="file")
            assert read < log.stat().st_size
            print(f"peak RSS growth {growth / MIB:.1f} MiB; file read {read / MIB:.1f} MiB")

            began = time.monotonic()
            assert process.terminate(timeout=15) == 0
            assert time.monotonic() - began < 10
        finally:
            process.close()
