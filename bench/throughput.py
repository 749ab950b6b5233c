"""Throughput: `event-sidecar replay` beside fair peers and floors, on two generated logs.

    .venv/bin/python -m bench.throughput --lines 1000000 --runs 5

Per run and log, one after the other: `replay`; mtail --one_shot with bench/mtail/bench.mtail
(one regex per rule, with capture groups); mtail with bench/mtail-one-regex/one_regex.mtail (the
cheapest program that counts the same: one regex, one capture group); bench/floor_orjson.py (a
substring pre-filter and orjson on the candidate lines only); and `grep -c` of the rules'
messages. Three logs (bench/generate.py, seed 1, generated once per size in bench/out/): `mixed`
(about 5 % of lines match a rule, 1,000 objects), `flapping` (30 % of the lines are quota
transitions on 300 objects, half of them changes, so most Events are dropped by the spam filter:
the weak case, always measured) and `transitions-5` (the same with 5 % transitions). `--logs`
picks some of them.
Every run checks that the counts agree: replay's summary, the truth file, both mtail programs'
matches per rule and the floor's matches and Events; grep's count must be the matches plus the
lines that hold a message but are undecodable or over-long. Reports lines per second of CPU time
and of wall time (median, min-max), peak RSS, and replay's ratio to each; writes its section of
BENCHMARKS.md. `--smoke` runs a tiny input once and writes nothing (the test suite calls it).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench.report import ROOT, machine, run_measured, spread, today, write_section

BENCH = ROOT / "bench"
SIDECAR = Path(sys.executable).parent / "event-sidecar"
# Values as Prometheus' text format writes them: a million and more as `1.961704e+06`.
_MTAIL_SAMPLE = re.compile(r'rule_matches\{(?:msg|rule)="([^"]+)",prog="[^"]+"\} (\S+)')
_MTAIL_SAMPLE_RULE_FIRST = re.compile(r'rule_matches\{prog="[^"]+",rule="([^"]+)"\} (\S+)')
#: one_regex.mtail counts by message; the rule each message stands for.
_RULE_OF_MESSAGE = {
    "Quota evaluated": "quota-changed",
    "Reconciler error": "reconcile-error",
    "Pod status updated": "pod-status",
}
MESSAGES = tuple(_RULE_OF_MESSAGE)
#: The logs: name -> bench/generate.py's options beyond --lines and --out.
LOGS: dict[str, list[str]] = {
    "mixed": [],
    "flapping": ["--transitions", "0.3", "--objects", "300", "--changes", "0.5"],
    "transitions-5": ["--transitions", "0.05", "--objects", "300", "--changes", "0.5"],
}
#: What each log says, after its name in the report.
SHAPES = {
    "mixed": "about 5 % of the lines match a rule, 1,000 objects",
    "flapping": (
        "(`--transitions 0.3 --objects 300 --changes 0.5`): 30 % of the lines are quota "
        "transitions on 300 objects, half of them changing the state, so most Events are "
        "dropped by the spam filter (25 per object, then 1 per 300 s of the log's time)"
    ),
    "transitions-5": (
        "(`--transitions 0.05 --objects 300 --changes 0.5`): the same with 5 % transitions"
    ),
}
#: Replay's CPU rate at least this many times mtail's one-regex program's, per log.
TARGETS = {"mixed": 4.0, "flapping": 2.0, "transitions-5": 4.0}
#: The orjson floor at most this many times faster than replay (the mixed log only).
FLOOR_TARGET = 1.5
READERS = (
    "event-sidecar replay",
    "mtail, bench.mtail (3 regexes, capture groups)",
    "mtail, one_regex.mtail (1 regex)",
    "floor: substring + orjson (bench/floor_orjson.py)",
    "floor: grep -F -c",
)


@dataclass
class Sample:
    wall: float
    cpu: float
    rss_kib: int


@dataclass
class LogResult:
    name: str
    log: Path
    truth: dict[str, object]
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    summary: dict[str, object] = field(default_factory=dict)

    def add(self, reader: str, wall: float, cpu: float, rss_kib: int) -> None:
        self.samples.setdefault(reader, []).append(Sample(wall, cpu, rss_kib))


def ensure_log(lines: int, out_dir: Path, name: str = "mixed") -> tuple[Path, dict[str, object]]:
    log = out_dir / f"{name}-{lines}.log"
    truth_path = Path(f"{log}.truth.json")
    if not truth_path.exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.generate",
                "--lines",
                str(lines),
                "--out",
                str(log),
                *LOGS[name],
            ],
            check=True,
            cwd=ROOT,
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


def run_mtail(mtail: str, log: Path, progs: Path) -> tuple[float, float, int, dict[str, int]]:
    run = run_measured(
        [
            mtail,
            "--one_shot",
            "--one_shot_format=prometheus",
            # Even --one_shot listens (on 3903 by default): any free port, so that runs beside
            # another mtail do not fail.
            "--port",
            "0",
            "--progs",
            str(progs),
            "--logs",
            str(log),
            "--logtostderr",
        ]
    )
    text = run.stdout.decode()
    pairs = _MTAIL_SAMPLE.findall(text) + _MTAIL_SAMPLE_RULE_FIRST.findall(text)
    matches = {_RULE_OF_MESSAGE.get(key, key): int(float(n)) for key, n in pairs if float(n)}
    return run.wall, run.cpu, run.max_rss_kib, matches


def run_floor(log: Path) -> tuple[float, float, int, dict[str, object]]:
    run = run_measured([sys.executable, "-m", "bench.floor_orjson", str(log)])
    return run.wall, run.cpu, run.max_rss_kib, json.loads(run.stdout)


def run_grep(log: Path) -> tuple[float, float, int, int]:
    options = [part for message in MESSAGES for part in ("-e", message)]
    run = run_measured(["env", "LC_ALL=C", "grep", "-F", "-c", *options, str(log)])
    return run.wall, run.cpu, run.max_rss_kib, int(run.stdout)


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


def measure_once(result: LogResult, mtail: str) -> None:
    """Each reader once on this log, its counts checked against the truth."""
    truth = result.truth
    matched = truth["matched"]
    assert isinstance(matched, dict)
    wall, cpu, rss, summary = run_sidecar(result.log)
    check_sidecar(summary, truth)
    result.summary = summary
    result.add(READERS[0], wall, cpu, rss)
    for reader, progs in ((READERS[1], BENCH / "mtail"), (READERS[2], BENCH / "mtail-one-regex")):
        wall, cpu, rss, matches = run_mtail(mtail, result.log, progs)
        if matches != matched:
            raise SystemExit(f"{reader}: counts {matches} differ from the truth {matched}")
        result.add(reader, wall, cpu, rss)
    wall, cpu, rss, floor = run_floor(result.log)
    if floor != truth:
        raise SystemExit(f"the orjson floor's counts {floor} differ from the truth {truth}")
    result.add(READERS[3], wall, cpu, rss)
    wall, cpu, rss, candidates = run_grep(result.log)
    undecodable, too_long = truth["undecodable"], truth["too_long"]
    assert isinstance(undecodable, int) and isinstance(too_long, int)
    if candidates != sum(matched.values()) + undecodable + too_long:
        raise SystemExit(f"grep counted {candidates} candidate lines, the truth says otherwise")
    result.add(READERS[4], wall, cpu, rss)


def cpu_rate(lines: int, samples: list[Sample]) -> float:
    return spread([lines / sample.cpu for sample in samples])[0]


def table(lines: int, result: LogResult) -> str:
    ours = cpu_rate(lines, result.samples[READERS[0]])
    rows = [
        "| reader | lines/s of CPU time | lines/s of wall time | peak RSS (MiB) "
        "| replay's CPU rate / this one's |",
        "|---|---|---|---|---|",
    ]
    for reader in READERS:
        samples = result.samples[reader]
        c = spread([lines / max(sample.cpu, 0.005) for sample in samples])
        w = spread([lines / sample.wall for sample in samples])
        rss = max(sample.rss_kib for sample in samples) / 1024
        ratio = "1" if reader == READERS[0] else f"{ours / c[0]:.2f}x"
        name = f"**{reader}**" if reader == READERS[0] else reader
        rows.append(
            f"| {name} | {c[0]:,.0f} ({c[1]:,.0f}-{c[2]:,.0f}) | {w[0]:,.0f} ({w[1]:,.0f}-"
            f"{w[2]:,.0f}) | {rss:.0f} | {ratio} |"
        )
    return "\n".join(rows)


def verdict(lines: int, result: LogResult) -> str:
    ours = cpu_rate(lines, result.samples[READERS[0]])
    lean = ours / cpu_rate(lines, result.samples[READERS[2]])
    floor = cpu_rate(lines, result.samples[READERS[3]]) / ours
    target = TARGETS[result.name]
    floor_target = (
        f" (target: within {FLOOR_TARGET}x: {'met' if floor <= FLOOR_TARGET else 'not met'})"
        if result.name == "mixed"
        else ""
    )
    return (
        f"replay is **{lean:.2f}x** mtail's one-regex program (target >= {target:g}x: "
        f"{'met' if lean >= target else 'not met'}) and the orjson floor is **{floor:.2f}x** "
        f"faster than replay{floor_target}"
    )


def describe(result: LogResult) -> str:
    truth, summary = result.truth, result.summary
    matched, events = truth["matched"], truth["events"]
    assert isinstance(matched, dict) and isinstance(events, dict)
    dropped = summary.get("dropped", {})
    assert isinstance(dropped, dict)
    written = f"{summary['created']:,} created + {summary['patched']:,} patched"
    drops = ", ".join(f"{n:,} {cause}" for cause, n in dropped.items()) or "none"
    return (
        f"{truth['lines']:,} lines, {truth['too_long']} over-long, {truth['undecodable']:,} "
        f"undecodable, {sum(matched.values()):,} matches, {sum(events.values()):,} Events "
        f"({written}; dropped: {drops})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out-dir", type=Path, default=BENCH / "out")
    parser.add_argument(
        "--logs",
        nargs="+",
        choices=list(LOGS),
        default=list(LOGS),
        help="which logs to measure (all by default)",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny input, one run, no report")
    args = parser.parse_args()
    if args.smoke:
        args.lines, args.runs = 2000, 1
    args.out_dir.mkdir(parents=True, exist_ok=True)
    mtail = shutil.which("mtail")
    if mtail is None:
        raise SystemExit("mtail is not installed (apt-get install mtail): no peer to compare with")
    results = [LogResult(name, *ensure_log(args.lines, args.out_dir, name)) for name in args.logs]
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    for _ in range(args.runs):
        for result in results:
            measure_once(result, mtail)
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    if args.smoke:
        cpu = {r.name: r.samples[READERS[0]][0].cpu for r in results}
        print(f"smoke ok: {args.lines} lines; replay CPU s: {cpu}")
        return
    mtail_version = subprocess.run(
        [mtail, "--version"], capture_output=True, text=True, check=True
    ).stdout.split(" git")[0]
    sizes = ", ".join(f"{r.name} {r.log.stat().st_size / 2**20:.0f} MiB" for r in results)
    shapes = "\n".join(f"- **{r.name}** {SHAPES[r.name]}; {describe(r)}." for r in results)
    tables = "\n\n".join(f"**{r.name}**\n\n{table(args.lines, r)}" for r in results)
    verdicts = " ".join(f"{r.name}: {verdict(args.lines, r)}." for r in results)
    logs = "" if args.logs == list(LOGS) else f" --logs {' '.join(args.logs)}"
    section = f"throughput-{args.lines}" + ("" if not logs else "-" + "-".join(args.logs))
    body = f"""
## Throughput, {args.lines:,} lines per log ({sizes})

`.venv/bin/python -m bench.throughput --lines {args.lines} --runs {args.runs}{logs}` on {today()};
{machine()}; {mtail_version}; GNU grep. Load average {" ".join(load_before)} before,
{" ".join(load_after)} after (a shared machine: the wall-time column suffers from it more than
the CPU-time one).

Logs from bench/generate.py (seed 1), each mixing controller-runtime JSON (most lines), klog
text, logfmt, 1 % garbage and a few over-long lines, replayed with bench/rules.yaml's three rules:

{shapes}

Each run ran every reader on each log, one at a time, and checked that they did the same work:
replay's summary equal to the truth file, both mtail programs' match counts per rule equal to it,
the orjson floor's matches and Events per rule equal to it, and grep's count equal to the matches
plus the undecodable and over-long lines that hold a rule's message. The peers:
bench/mtail/bench.mtail (one regex per rule, capture groups for the fields, the program of the
earlier tables); bench/mtail-one-regex/one_regex.mtail, the cheapest mtail program that counts
the same (one regex, one capture group naming the rule); the floors are bench/floor_orjson.py
(substring pre-filter, orjson on the candidates only, the same counts) and `grep -F -c`, which
only counts candidate lines. CPU time is user + system from GNU time, peak RSS its maximum
resident set. Median of {args.runs} runs (min-max):

{tables}

{verdicts}
"""
    write_section(section, body)
    print(body)


if __name__ == "__main__":
    main()
