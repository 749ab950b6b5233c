"""A tiny run of bench/memory.py against the session's control plane: the daemon and mtail follow
the same files, both count every match, and their peak RSS is read (no figures)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.controlplane import ControlPlane

ROOT = Path(__file__).parent.parent


def test_memory_benchmark_smoke(control_plane: ControlPlane) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench/memory.py"),
            "--smoke",
            "--kubeconfig",
            str(control_plane.kubeconfig),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert done.stdout.startswith("smoke ok: 6000 lines into 10 files (api)"), done.stdout
