"""The daemon in-process: constructing it touches no file; starting it reads the checkpoint."""

from __future__ import annotations

import asyncio
from pathlib import Path

from prometheus_client import CollectorRegistry

from sidecar.core.rules import compile_rules, parse_rules
from sidecar.core.settings import CheckpointSettings, DaemonSettings, FileSettings, HttpSettings
from sidecar.daemon.service import Daemon
from sidecar.model import FilePosition
from sidecar.runtime.checkpoints import Checkpoint, write_checkpoint
from sidecar.runtime.metrics import Metrics
from sidecar.runtime.sinks import MemorySink
from tests.daemon_support import RULES


def settings(log: Path) -> DaemonSettings:
    return DaemonSettings(
        host="pod-0",
        http=HttpSettings(host="127.0.0.1", port=0),
        files=FileSettings(paths=(str(log),), poll_interval=0.05, watch="poll"),
        checkpoint=CheckpointSettings(interval=0.2),
    )


async def test_construction_reads_and_removes_nothing_start_up_does(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    checkpoint_path = tmp_path / ".event-sidecar-checkpoint.json"
    info = log.stat()
    write_checkpoint(
        checkpoint_path,
        Checkpoint(
            files=(FilePosition(str(log), info.st_dev, info.st_ino, "", 0, 0),),
            transitions=(("phase", "ConfigMap", "ns", "obj-0", "", "Ready"),),
        ),
    )
    leftover = tmp_path / f".{checkpoint_path.name}.123.tmp"  # what a killed write leaves
    leftover.write_bytes(b"{")
    rules = compile_rules(parse_rules(RULES, "rules.yaml"))
    daemon = Daemon(rules, MemorySink(), settings(log), Metrics(CollectorRegistry()))

    assert leftover.exists()
    assert daemon.files is None
    assert daemon.tracker.export() == []
    assert daemon.readiness()["sources"] is False

    running = asyncio.create_task(daemon.run())
    for _ in range(200):
        if daemon.files is not None and daemon.files.ready:
            break
        await asyncio.sleep(0.01)
    assert daemon.readiness()["sources"] is True
    assert not leftover.exists()
    assert [list(row) for row in daemon.tracker.export()] == [
        ["phase", "ConfigMap", "ns", "obj-0", "", "Ready"]
    ]
    daemon.stop()
    assert await asyncio.wait_for(running, 15) == 0


async def test_a_dead_task_fails_healthz_and_ends_the_run_with_1(tmp_path: Path) -> None:
    # Every read of /proc/self/mem at offset 0 fails with EIO: the file source dies on its first.
    log = tmp_path / "app.log"
    log.symlink_to("/proc/self/mem")
    rules = compile_rules(parse_rules(RULES, "rules.yaml"))
    daemon = Daemon(rules, MemorySink(), settings(log), Metrics(CollectorRegistry()))
    assert daemon.liveness() == {"tasks": True}
    assert await asyncio.wait_for(daemon.run(), 15) == 1
    assert daemon.failed_task == "file-source"
    assert daemon.liveness() == {"tasks": False}
