"""The checkpoint's volume fails: read-only, or full. Events keep flowing, nothing doubles.

A checkpoint that cannot be written only means a restart re-reads more: the sidecar logs it,
stays healthy, exits 0 on SIGTERM, and the restarted sidecar re-reads from the last checkpoint
that was written, each re-read Event refused as already stored (409) rather than doubled.
The volume is a small tmpfs mounted for the test (the suite runs as root).
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.controlplane import ControlPlane
from tests.daemon_support import Sidecar, wait_for
from tests.faults.support import Stream, drops, fault_args, healthy, settle

BATCH = 20


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs, unmounted at the end."""
    path = tmp_path / "state"
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def remount(path: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True)


def fill(path: Path) -> None:
    """Write a file until the volume has no room left."""
    with contextlib.suppress(OSError), (path / "filler").open("wb", buffering=0) as filler:
        while True:
            filler.write(b"\0" * 4096)


def _run(
    control_plane: ControlPlane,
    namespace: str,
    tmp_path: Path,
    volume: Path,
    fault: str,
    *,
    begin: Callable[[], object],
    end: Callable[[], object],
) -> None:
    checkpoint = volume / "checkpoint.json"
    stream = Stream(tmp_path / "controller.log", namespace)
    args = fault_args(
        control_plane, tmp_path, "--checkpoint", str(checkpoint), "--checkpoint-interval", "0.2"
    )
    first = Sidecar(args, tmp_path)
    second = Sidecar(args, tmp_path)
    try:
        first.start()
        stream.write(BATCH)
        settle(control_plane, stream, lambda: drops(first))
        wait_for(checkpoint.exists, "the first checkpoint")
        saved = checkpoint.read_bytes()
        begin()
        stream.write(BATCH)
        settle(control_plane, stream, lambda: drops(first))
        wait_for(lambda: "cannot write the checkpoint" in first.stderr(), "the failed write logged")
        assert healthy(first)
        first_drops = drops(first)
        assert first.terminate(timeout=20) == 0
        assert checkpoint.read_bytes() == saved  # the last good one, whole
        end()

        second.start()
        stream.write(BATCH)
        result = settle(
            control_plane,
            stream,
            lambda: {cause: first_drops.get(cause, 0) + n for cause, n in drops(second).items()},
        )
        assert result.lost == 0, str(result)
        # It resumed from the last checkpoint written: the batch after it was read again.
        assert second.metric("event_sidecar_lines_read_total") == 2 * BATCH
        print(f"{fault}: {result}")
        assert second.terminate(timeout=20) == 0
    finally:
        first.close()
        second.close()


def test_checkpoint_volume_read_only(
    control_plane: ControlPlane, namespace: str, tmp_path: Path, volume: Path
) -> None:
    _run(
        control_plane,
        namespace,
        tmp_path,
        volume,
        "checkpoint volume read-only",
        begin=lambda: remount(volume, "ro"),
        end=lambda: remount(volume, "rw"),
    )


def test_checkpoint_volume_full(
    control_plane: ControlPlane, namespace: str, tmp_path: Path, volume: Path
) -> None:
    _run(
        control_plane,
        namespace,
        tmp_path,
        volume,
        "checkpoint volume full",
        begin=lambda: fill(volume),
        end=(volume / "filler").unlink,
    )
