"""The API goes away while the sidecar follows a log: every transition is stored or counted.

Each test writes transitions before, during and after the fault, and asserts the accounting
(`support.settle`): Events stored + drops by cause = transitions written, none stored twice, and
`/healthz` answering 200 throughout (an outage is no reason to restart the sidecar). Retries are
2 s apart (`--retry-seconds 2`, 12 tries), so these short outages lose nothing.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

from tests.controlplane import ControlPlane
from tests.daemon_support import Sidecar, wait_for
from tests.faults.support import Stream, drops, fault_args, healthy, settle

BATCH = 20
#: Seconds the fault lasts while the log grows (with the stop and restart around it).
OUTAGE = 6.0


def _during_fault(process: Sidecar, stream: Stream) -> None:
    """Write a batch while the fault lasts; the sidecar stays alive and healthy."""
    stream.write(BATCH)
    end = time.monotonic() + OUTAGE
    while time.monotonic() < end:
        assert healthy(process), process.stderr()[-2000:]
        time.sleep(0.5)


def _run(
    plane: ControlPlane,
    namespace: str,
    tmp_path: Path,
    fault: str,
    *,
    begin: Callable[[], object],
    end: Callable[[], object],
) -> None:
    stream = Stream(tmp_path / "controller.log", namespace)
    stream.write(BATCH)
    process = Sidecar(fault_args(plane, tmp_path), tmp_path)
    try:
        process.start()
        settle(plane, stream, lambda: drops(process))
        begin()
        try:
            _during_fault(process, stream)
        finally:
            end()
        stream.write(BATCH)
        result = settle(plane, stream, lambda: drops(process), timeout=90)
        assert healthy(process)
        assert result.lost == 0, str(result)
        print(f"{fault}: {result}")
        assert process.terminate(timeout=20) == 0
    finally:
        process.close()


def test_apiserver_stopped_and_started(
    outage_plane: ControlPlane, outage_namespace: str, tmp_path: Path
) -> None:
    _run(
        outage_plane,
        outage_namespace,
        tmp_path,
        "apiserver stop/start",
        begin=lambda: outage_plane.stop_server("kube-apiserver"),
        end=lambda: outage_plane.start_server("kube-apiserver"),
    )


def test_etcd_stopped_and_started(
    outage_plane: ControlPlane, outage_namespace: str, tmp_path: Path
) -> None:
    _run(
        outage_plane,
        outage_namespace,
        tmp_path,
        "etcd stop/start",
        begin=lambda: outage_plane.stop_server("etcd"),
        end=lambda: outage_plane.start_server("etcd"),
    )


def test_apiserver_frozen_and_thawed(
    outage_plane: ControlPlane, outage_namespace: str, tmp_path: Path
) -> None:
    _run(
        outage_plane,
        outage_namespace,
        tmp_path,
        "apiserver SIGSTOP/SIGCONT",
        begin=lambda: outage_plane.signal_server("kube-apiserver", signal.SIGSTOP),
        end=lambda: outage_plane.signal_server("kube-apiserver", signal.SIGCONT),
    )


def test_a_sidecar_started_while_the_apiserver_is_down_catches_up(
    outage_plane: ControlPlane, outage_namespace: str, tmp_path: Path
) -> None:
    stream = Stream(tmp_path / "controller.log", outage_namespace)
    stream.write(BATCH)
    outage_plane.stop_server("kube-apiserver")
    process = Sidecar(fault_args(outage_plane, tmp_path), tmp_path)
    try:
        try:
            process.start(wait_ready=False)
            port = wait_for(process._started, "the sidecar to start", timeout=20)
            process.port = port
            assert not process.ready()  # the API is not reachable
            _during_fault(process, stream)
        finally:
            outage_plane.start_server("kube-apiserver")
        result = settle(outage_plane, stream, lambda: drops(process), timeout=90)
        assert result.lost == 0, str(result)
        print(f"started during an apiserver outage: {result}")
        wait_for(process.ready, "/readyz 200 once the API is back", timeout=20)
        assert process.terminate(timeout=20) == 0
    finally:
        process.close()
