"""A tiny run of bench/flood.py against the session's control plane: ours writes what client-go
would, and the metrics count every suppressed Event (no figures)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.controlplane import ControlPlane

ROOT = Path(__file__).parent.parent


def test_flood_benchmark_smoke(control_plane: ControlPlane, tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench/flood.py"),
            "--smoke",
            "--kubeconfig",
            str(control_plane.kubeconfig),
            "--work-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert done.stdout.startswith("smoke ok: 2000 lines"), done.stdout
