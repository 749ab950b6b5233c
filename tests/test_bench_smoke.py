"""A tiny run of each benchmark, so they cannot rot (the figures come from `bench/` itself).

Each `--smoke` run checks its own results (counts against the truth, every answer, the peer's
model) and exits non-zero when one is wrong; the control-plane ones reuse the session's cluster.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.controlplane import ControlPlane

ROOT = Path(__file__).parent.parent


def run_smoke(module: str, *options: str) -> str:
    """Run `python -m bench.<module> --smoke OPTIONS` from the checkout, as the README says;
    assert it passed; return what it printed."""
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", "--smoke", *options],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout


def test_throughput_benchmark_smoke(tmp_path: Path) -> None:
    """replay and mtail match the truth file on a small generated log."""
    assert run_smoke("throughput", "--out-dir", str(tmp_path)).startswith("smoke ok: 2000 lines")


def test_startup_benchmark_smoke() -> None:
    """The commands run, importtime parses, and the RSS probe walks `run`'s imports."""
    assert run_smoke("startup").startswith("smoke ok: 3 timings")


def test_webhook_benchmark_smoke() -> None:
    """Both webhooks answer and every answer checks out."""
    assert run_smoke("webhook").startswith("smoke ok: ")


def test_flood_benchmark_smoke(control_plane: ControlPlane, tmp_path: Path) -> None:
    """Ours writes what client-go would, and the metrics count every suppressed Event."""
    out = run_smoke(
        "flood", "--kubeconfig", str(control_plane.kubeconfig), "--work-dir", str(tmp_path)
    )
    assert out.startswith("smoke ok: 2000 lines"), out


def test_latency_benchmark_smoke(control_plane: ControlPlane) -> None:
    """Every transition's Event is seen on a watch, and the daemon's metrics agree."""
    out = run_smoke("latency", "--kubeconfig", str(control_plane.kubeconfig))
    assert out.startswith("smoke ok: 150 Events"), out


def test_memory_benchmark_smoke(control_plane: ControlPlane) -> None:
    """The daemon and mtail follow the same files, both count every match."""
    out = run_smoke("memory", "--kubeconfig", str(control_plane.kubeconfig))
    assert out.startswith("smoke ok: 6000 lines into 10 files (api)"), out


def test_writes_benchmark_smoke(control_plane: ControlPlane) -> None:
    """The daemon (--writes 8 and 1) and the peer store every Event, each counted once by the
    apiserver, with the same fields."""
    out = run_smoke("writes", "--kubeconfig", str(control_plane.kubeconfig))
    assert out.startswith("smoke ok: 1000 Events per writer"), out


def test_clients_benchmark_smoke(control_plane: ControlPlane) -> None:
    """Each way of writing an Event (the official client blocking and asyncio, the daemon's
    sender, bare aiohttp) is answered 201 for every POST."""
    out = run_smoke("clients", "--kubeconfig", str(control_plane.kubeconfig))
    assert out.startswith("smoke ok: 200 Events per client"), out


def test_soak_benchmark_smoke() -> None:
    """The daemon follows a rotated log for 20 s, reads every line and counts every match."""
    out = run_smoke("soak")
    assert out.startswith("smoke ok: ") and " lines, " in out and "rotations" in out, out


def test_wakeups_benchmark_smoke() -> None:
    """The daemon and mtail follow one file, the daemon and `kubectl logs -f` one pod log
    stream; the daemons read every line written, kubectl prints every one."""
    assert run_smoke("wakeups").startswith("smoke ok: 2 cases")
