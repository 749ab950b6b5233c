"""CPU seconds of one in-process `replay` of a log, the best of a few runs: for comparing two
versions of the rules engine side by side on the same machine, where the whole `throughput.py`
run (mtail and the floors beside it) would take too long.

    python -m bench.replay_cpu LOG RULES [--runs 3]

Reads the log once, then replays it `--runs` times (in 64 KiB chunks, into a sink that keeps
the last 1,000 Events, as `replay -o none` does) and prints the fewest CPU seconds one took. The
best run is the one least disturbed by the rest of a shared machine. To compare with another
version, run it with that version's `sidecar` package first on `PYTHONPATH`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from sidecar.core.rules import load_rules
from sidecar.offline.replay import ReplaySettings, replay
from sidecar.runtime.metrics import Metrics
from sidecar.runtime.sinks import MemorySink

CHUNK = 64 * 1024


def best_cpu_seconds(log: Path, rules: Path, runs: int) -> float:
    data = log.read_bytes()
    chunks = [data[start : start + CHUNK] for start in range(0, len(data), CHUNK)]
    compiled = load_rules(rules)
    best = float("inf")
    for _ in range(runs):
        started = time.process_time()
        replay(
            chunks,
            compiled,
            MemorySink(keep=1000),
            Metrics(CollectorRegistry()),
            settings=ReplaySettings(host="bench", year=2024),
        )
        best = min(best, time.process_time() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("log", type=Path)
    parser.add_argument("rules", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    print(f"{best_cpu_seconds(options.log, options.rules, options.runs):.3f}")


if __name__ == "__main__":
    main()
