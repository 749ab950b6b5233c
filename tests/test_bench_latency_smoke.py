"""A tiny run of bench/latency.py against the session's control plane: the daemon follows a file,
every transition's Event is seen on a watch, and the daemon's metrics agree (no figures)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.controlplane import ControlPlane

ROOT = Path(__file__).parent.parent


def test_latency_benchmark_smoke(control_plane: ControlPlane) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench/latency.py"),
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
    assert done.stdout.startswith("smoke ok: 150 Events"), done.stdout
