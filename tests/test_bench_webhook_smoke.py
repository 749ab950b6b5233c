"""A tiny run of bench/webhook.py: both webhooks answer, every answer checks out (no figures)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_webhook_benchmark_smoke() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench/webhook.py"), "--smoke"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert done.stdout.startswith("smoke ok: "), done.stdout
