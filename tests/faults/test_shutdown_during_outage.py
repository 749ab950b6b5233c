"""SIGTERM while the apiserver is down (a rolling update during an outage): nothing is lost.

The drain cannot write what the API does not take; at its deadline the writes still retrying are
abandoned and counted (`shutdown`), and the checkpoint must stay behind their lines, so that the
next start reads them again and writes them. Before, the mark queued after them was committed as
soon as the abandoned writes were cancelled: the checkpoint jumped past Events never stored, and
after both restarted 295 of 300 were there.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.controlplane import ControlPlane
from tests.daemon_support import Sidecar, wait_for
from tests.faults.support import Stream, drops, fault_args, settle

STORED_FIRST = 200
DURING_OUTAGE = 100
#: Seconds between the lines written while the apiserver is down.
LINE_INTERVAL = 0.1


def _checkpointed(path: Path) -> int | None:
    """The log's offset in the checkpoint (None before the first one)."""
    try:
        document = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    [position] = document["files"]
    return int(position["offset"])


def test_sigterm_during_an_apiserver_outage_loses_nothing(
    outage_plane: ControlPlane, outage_namespace: str, tmp_path: Path
) -> None:
    log = tmp_path / "controller.log"
    checkpoint = tmp_path / ".event-sidecar-checkpoint.json"
    stream = Stream(log, outage_namespace)
    stream.write(STORED_FIRST)
    process = Sidecar(fault_args(outage_plane, tmp_path), tmp_path)
    try:
        process.start()
        settle(outage_plane, stream, lambda: drops(process), timeout=90)
        stored_size = log.stat().st_size
        wait_for(lambda: _checkpointed(checkpoint) == stored_size, "the checkpoint at line 200")

        outage_plane.stop_server("kube-apiserver")
        try:
            for _ in range(DURING_OUTAGE):
                stream.write(1)
                time.sleep(LINE_INTERVAL)
            # Retries are 2 s apart, 12 tries: every write is still retrying at the deadline.
            assert process.terminate(timeout=20) == 0
        finally:
            outage_plane.start_server("kube-apiserver")
        stopped = [
            r for r in process.logs() if r.get("msg") == "drain deadline passed; Events dropped"
        ]
        assert stopped, process.stderr()[-3000:]
        assert int(stopped[0]["dropped"]) > 0  # the drain was cut short: the case under test
        assert _checkpointed(checkpoint) == stored_size  # not past a line whose Event is missing

        again = Sidecar(fault_args(outage_plane, tmp_path), tmp_path)
        process.close()
        process = again
        process.start()
        result = settle(outage_plane, stream, lambda: drops(process), timeout=90)
        assert result.written == STORED_FIRST + DURING_OUTAGE
        assert result.stored == result.written, str(result)
        assert result.lost == 0, str(result)
        assert result.doubled == 0, str(result)
        print(f"SIGTERM during an apiserver outage, then both restarted: {result}")
        assert process.terminate(timeout=20) == 0
    finally:
        process.close()
