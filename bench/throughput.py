"""Throughput: `event-sidecar replay` beside mtail (one-shot) on the same generated log.

    .venv/bin/python bench/throughput.py --lines 1000000 --runs 5
    .venv/bin/python bench/throughput.py --lines 10000000 --runs 5

Generates the log once per size (bench/out/, seeded), checks that replay's counts equal the
truth file exactly, and that mtail's match counts do too, then reports lines per second of CPU
time (median, min, max of the runs) and the ratio; writes its section of BENCHMARKS.md.
`--smoke` runs a tiny input once and writes nothing (the test suite calls it).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import ROOT, machine, run_measured, spread, today, write_section

BENCH = ROOT / "bench"
SIDECAR = Path(sys.executable).parent / "event-sidecar"
_MTAIL_SAMPLE = re.compile(r'rule_matches\{prog="bench.mtail",rule="([^"]+)"\} (\d+)')


def ensure_log(lines: int, out_dir: Path) -> tuple[Path, dict[str, object]]:
    log = out_dir / f"mixed-{lines}.log"
    truth_path = Path(f"{log}.truth.json")
    if not truth_path.exists():
        subprocess.run(
            [sys.executable, str(BENCH / "generate.py"), "--lines", str(lines), "--out", str(log)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return log, json.loads(truth_path.read_text())


def run_sidecar(log: Path) -> tuple[float, float, int, dict[str, object]]:
    run = run_measured(
        [
            str(SIDECAR),
            "replay",
            str(log),
            "--rules",
            str(BENCH / "rules.yaml"),
            "-o",
            "none",
            "--summary",
            "json",
        ]
    )
    return (
        run.wall,
        run.cpu,
        run.max_rss_kib,
        json.loads(run.stderr.decode().strip().splitlines()[-1]),
    )


def run_mtail(mtail: str, log: Path) -> tuple[float, float, int, dict[str, int]]:
    run = run_measured(
        [
            mtail,
            "--one_shot",
            "--one_shot_format=prometheus",
            "--progs",
            str(BENCH / "mtail"),
            "--logs",
            str(log),
            "--logtostderr",
        ]
    )
    matches = {rule: int(n) for rule, n in _MTAIL_SAMPLE.findall(run.stdout.decode())}
    return run.wall, run.cpu, run.max_rss_kib, matches


def check_sidecar(summary: dict[str, object], truth: dict[str, object]) -> None:
    events, matched = truth["events"], truth["matched"]
    assert isinstance(events, dict) and isinstance(matched, dict)
    expected = {
        "lines_read": truth["lines"],
        "too_long": truth["too_long"],
        "undecodable": {"invalid_json": truth["undecodable"]} if truth["undecodable"] else {},
        "matched": sum(matched.values()),
        "events": sum(events.values()),
        "rule_misses": 0,
    }
    actual = {key: summary[key] for key in expected}
    if actual != expected:
        raise SystemExit(f"replay does not match the truth: {actual} != {expected}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out-dir", type=Path, default=BENCH / "out")
    parser.add_argument("--smoke", action="store_true", help="tiny input, one run, no report")
    args = parser.parse_args()
    if args.smoke:
        args.lines, args.runs = 2000, 1
    args.out_dir.mkdir(parents=True, exist_ok=True)
    mtail = shutil.which("mtail")
    if mtail is None:
        raise SystemExit("mtail is not installed (apt-get install mtail): no peer to compare with")
    log, truth = ensure_log(args.lines, args.out_dir)

    ours: list[tuple[float, float, int]] = []
    theirs: list[tuple[float, float, int]] = []
    for _ in range(args.runs):
        wall, cpu, rss, summary = run_sidecar(log)
        check_sidecar(summary, truth)
        ours.append((wall, cpu, rss))
        wall, cpu, rss, matches = run_mtail(mtail, log)
        if matches != truth["matched"]:
            raise SystemExit(f"mtail's counts {matches} differ from the truth {truth['matched']}")
        theirs.append((wall, cpu, rss))
    if args.smoke:
        ours_cpu, theirs_cpu = ours[0][1], theirs[0][1]
        print(f"smoke ok: {args.lines} lines; CPU s: replay {ours_cpu:.2f}, mtail {theirs_cpu:.2f}")
        return

    def rates(samples: list[tuple[float, float, int]], index: int) -> list[float]:
        return [args.lines / sample[index] for sample in samples]

    our_cpu, their_cpu = rates(ours, 1), rates(theirs, 1)
    our_wall, their_wall = rates(ours, 0), rates(theirs, 0)
    ratio = spread(our_cpu)[0] / spread(their_cpu)[0]
    mtail_version = subprocess.run(
        [mtail, "--version"], capture_output=True, text=True, check=True
    ).stdout.split(" git")[0]
    size = log.stat().st_size / 2**20

    def row(
        name: str, cpu: list[float], wall: list[float], samples: list[tuple[float, float, int]]
    ) -> str:
        c, w = spread(cpu), spread(wall)
        rss = max(sample[2] for sample in samples) / 1024
        cpu_cell = f"{c[0]:,.0f} ({c[1]:,.0f}-{c[2]:,.0f})"
        wall_cell = f"{w[0]:,.0f} ({w[1]:,.0f}-{w[2]:,.0f})"
        return f"| {name} | {cpu_cell} | {wall_cell} | {rss:.0f} |"

    matched, events = truth["matched"], truth["events"]
    assert isinstance(matched, dict) and isinstance(events, dict)
    body = f"""
## Throughput, {args.lines:,} lines ({size:.0f} MiB)

`.venv/bin/python bench/throughput.py --lines {args.lines} --runs {args.runs}` on {today()};
{machine()}; {mtail_version}.

The log mixes controller-runtime JSON (most lines), klog text, logfmt, 1 % garbage and a few
over-long lines (bench/generate.py, seed 1); about 5 % of lines match one of bench/rules.yaml's
three rules. replay's counts matched the truth file exactly in every run ({truth["lines"]:,}
lines, {truth["too_long"]} over-long, {truth["undecodable"]:,} undecodable,
{sum(matched.values()):,} matches, {sum(events.values()):,} Events), and so did
mtail's match counts (bench/mtail/bench.mtail). Median of {args.runs} runs (min-max):

| reader | lines/s of CPU time | lines/s of wall time | peak RSS (MiB) |
|---|---|---|---|
{row("event-sidecar replay", our_cpu, our_wall, ours)}
{row("mtail --one_shot", their_cpu, their_wall, theirs)}

Ratio (median lines/s of CPU time): **{ratio:.1f}x mtail** (target: at least 4x).
"""
    write_section(f"throughput-{args.lines}", body)
    print(body)


if __name__ == "__main__":
    main()
