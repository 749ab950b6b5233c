"""Wake-ups: steady-state CPU of `run --dry-run` following one growing file, beside mtail.

    .venv/bin/python -m bench.wakeups --duration 20

A sidecar is paid for in every pod, so what matters at a controller's usual rates is the cost of
each wake-up, not of each line. One empty file is followed, in the same run, by

- ours: `python -m sidecar run --file LOG --rules bench/rules.yaml --dry-run --listen
  127.0.0.1:0 --start beginning --checkpoint DIR/checkpoint.json --settle-time S` (the default
  inotify watch; `--settle-time`, default 0.1 here, 0 in the daemon: the settle time is opt-in);
- the peer: mtail's daemon, `mtail --progs bench/mtail-one-regex --logs LOG --port P` (its
  cheapest program for the same job: one regex).

First both sit idle for `--idle` seconds (no lines): their idle CPU. Then, per case, a writer
appends bench/generate.py's mixed log at 10, 100 and 1,000 lines/s for `--duration` seconds, either
in 10 ms batches (one `write()` per 10 ms tick holding the lines due) or with one unbuffered
`write()` per line (a controller that does not buffer its log). CPU is each process's utime +
stime from /proc/PID/stat over the writing window after its first second (millicores: CPU ms per
wall second). After each window, `--probe` seconds more of the same writing measure latency:
/metrics is scraped every 10 ms (its cost is outside the CPU window) and a line's latency is from
its `write()` returning to the first scrape where `event_sidecar_lines_read_total` counts it
(decoded and through the rules; the dry-run sink then takes well under a millisecond, see the
daemon's own `event_sidecar_event_latency_seconds`). Quantiles are over all probe lines of a case
(at least 60: the probe is longer at 10 lines/s).

Every line is checked: at the end the daemon has read exactly the lines written. `--smoke` runs
two short cases and checks, writes nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench.harness import http_text, metric_sum, mtail_daemon, sidecar_run
from bench.memory import make_log
from bench.report import ROOT, load_average, machine, today, write_section

BENCH = ROOT / "bench"
TICK = 0.01
RATES = (10, 100, 1000)
MODES = ("batch", "line")
#: The target: at most this many times mtail's CPU at each rate.
RATIO_TARGET = 3.0
LATENCY_TARGET = 0.25
#: Seconds between scrapes of the daemon's line count in the latency probe: fine enough for a
#: 250 ms target, and each scrape costs the daemon little (it runs on the event loop).
SCRAPE = 0.01
#: Lines each latency probe writes at least (its seconds are stretched at low rates).
PROBE_LINES = 60


@dataclass(frozen=True)
class Case:
    rate: int
    mode: str
    ours_mc: float
    theirs_mc: float
    p50: float
    p99: float
    worst: float

    @property
    def ratio(self) -> float:
        return self.ours_mc / self.theirs_mc if self.theirs_mc else math.inf


class Writer:
    """Appends `lines` to `path` at `rate` lines/s, in 10 ms batches or one write() per line;
    `written` = [(monotonic time the write returned, lines written so far)]."""

    def __init__(self, path: Path, lines: list[bytes], start: int) -> None:
        self.path = path
        self.lines = lines
        self.next = start
        self.written: list[tuple[float, int]] = []

    def run(self, rate: int, mode: str, duration: float) -> None:
        with self.path.open("ab", buffering=0) as out:
            began = time.monotonic()
            done = 0
            while True:
                now = time.monotonic()
                elapsed = now - began
                if elapsed >= duration:
                    return
                due = int(elapsed * rate) - done
                if due > 0:
                    chunk = self.lines[self.next : self.next + due]
                    if mode == "batch":
                        out.write(b"".join(chunk))
                        self.next += due
                        self.written.append((time.monotonic(), self.next))
                    else:
                        for line in chunk:
                            out.write(line)
                            self.next += 1
                            self.written.append((time.monotonic(), self.next))
                    done += due
                if mode == "batch":
                    time.sleep(TICK - (time.monotonic() - began) % TICK)
                else:
                    time.sleep(max(0.0, began + (done + 1) / rate - time.monotonic()))


def lines_read(url: str) -> float:
    return metric_sum(http_text(url), "event_sidecar_lines_read_total")


def probe_latency(writer: Writer, url: str, rate: int, mode: str, seconds: float) -> list[float]:
    """Write for `seconds` more while scraping the daemon's line count every `SCRAPE`; each line's
    latency (write returned -> first scrape that counts it)."""
    seen: list[tuple[float, float]] = []
    thread = threading.Thread(target=writer.run, args=(rate, mode, seconds))
    first = len(writer.written)
    thread.start()
    while thread.is_alive():
        seen.append((time.monotonic(), lines_read(url)))
        time.sleep(SCRAPE)
    target = writer.next
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        count = lines_read(url)
        seen.append((time.monotonic(), count))
        if count >= target:
            break
        time.sleep(SCRAPE)
    latencies = []
    index = 0
    for written_at, upto in writer.written[first:]:
        while index < len(seen) and seen[index][1] < upto:
            index += 1
        if index == len(seen):
            raise SystemExit(f"line {upto} never counted by the daemon")
        latencies.append(max(0.0, seen[index][0] - written_at))
    return latencies


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(
    *,
    idle: float,
    duration: float,
    probe: float,
    cases: list[tuple[int, str]],
    verbose: bool,
    settle: float,
) -> tuple[float, float, list[Case]]:
    """(idle millicores ours, mtail's, the cases); `verbose` prints each case as it ends."""
    with tempfile.TemporaryDirectory(prefix="wakeups-") as tmp:
        work = Path(tmp)
        needed = sum(rate * (duration + probe) for rate, _ in cases) + 1000
        lines, _ = make_log(int(needed), 1000, work, 1)
        log = work / "app.log"
        log.touch()
        options = ["--file", str(log), "--rules", str(BENCH / "rules.yaml"), "--dry-run"]
        options += ["--start", "beginning", "--checkpoint", str(work / "checkpoint.json")]
        options += ["--settle-time", str(settle)]
        with (
            sidecar_run(work, options, host="wakeups-0") as ours,
            mtail_daemon(work, BENCH / "mtail-one-regex", str(log)) as theirs,
        ):
            time.sleep(2)  # both settle after their start
            children = ours, theirs
            before = [child.cpu_seconds() for child in children]
            time.sleep(idle)
            idle_mc = [
                (child.cpu_seconds() - b) / idle * 1000
                for child, b in zip(children, before, strict=True)
            ]
            writer = Writer(log, lines, 0)
            results = []
            for rate, mode in cases:
                thread = threading.Thread(target=writer.run, args=(rate, mode, duration))
                thread.start()
                time.sleep(1)
                began, before = time.monotonic(), [child.cpu_seconds() for child in children]
                thread.join()
                wall = time.monotonic() - began
                used = [
                    (child.cpu_seconds() - b) / wall * 1000
                    for child, b in zip(children, before, strict=True)
                ]
                seconds = max(probe, PROBE_LINES / rate)
                latencies = probe_latency(writer, ours.url, rate, mode, seconds)
                case = Case(
                    rate,
                    mode,
                    used[0],
                    used[1],
                    quantile(latencies, 0.5),
                    quantile(latencies, 0.99),
                    max(latencies),
                )
                if verbose:
                    print(
                        f"{rate} lines/s {mode}: ours {case.ours_mc:.1f} mc, mtail "
                        f"{case.theirs_mc:.1f} mc ({case.ratio:.1f}x); latency p50 "
                        f"{case.p50 * 1000:.0f} ms p99 {case.p99 * 1000:.0f} ms",
                        flush=True,
                    )
                results.append(case)
                time.sleep(1)
            read = lines_read(ours.url)
            if read != writer.next:
                raise SystemExit(f"the daemon read {read:.0f} lines of {writer.next}")
    return idle_mc[0], idle_mc[1], results


def _exit(signum: int, _frame: object) -> None:
    """SIGTERM: unwind, so the daemon and mtail are stopped."""
    raise SystemExit(128 + signum)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per case")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle CPU")
    parser.add_argument("--probe", type=float, default=3.0, help="seconds of latency probe")
    parser.add_argument(
        "--settle-time", type=float, default=0.1, help="the daemon's --settle-time (0: off)"
    )
    parser.add_argument("--smoke", action="store_true", help="tiny run, checks only, no report")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _exit)
    cases = [(rate, mode) for rate in RATES for mode in MODES]
    if args.smoke:
        args.duration, args.idle, args.probe = 2.0, 1.0, 1.0
        cases = [(100, "batch"), (100, "line")]
    load_before = load_average()
    idle_ours, idle_theirs, results = measure(
        idle=args.idle,
        duration=args.duration,
        probe=args.probe,
        cases=cases,
        verbose=not args.smoke,
        settle=args.settle_time,
    )
    load_after = load_average()
    if args.smoke:
        print(f"smoke ok: {len(results)} cases")
        return
    rows = "\n".join(
        f"| {case.rate:,} | {'10 ms batches' if case.mode == 'batch' else 'one write() per line'} "
        f"| {case.ours_mc:.1f} | {case.theirs_mc:.1f} | {case.ratio:.1f}x | "
        f"{case.p50 * 1000:.0f} / {case.p99 * 1000:.0f} / {case.worst * 1000:.0f} ms |"
        for case in results
    )
    command = "python -m bench.wakeups " + " ".join(
        f"--{name} {value:g}"
        for name, value in (
            ("duration", args.duration),
            ("idle", args.idle),
            ("probe", args.probe),
            ("settle-time", args.settle_time),
        )
    )
    mtail_version = subprocess.run(
        ["mtail", "--version"], capture_output=True, text=True, check=True
    ).stdout.split(" git ")[0]
    settle = f"{args.settle_time:g}"
    body = f"""## Wake-ups: CPU following one file, beside mtail (settle time {settle} s)

`{command}`, {today()}, {machine()}; {mtail_version}. Load average {load_before} before,
{load_after} after (the machine is shared: the figures are from one run).

Ours: `run --file LOG --rules bench/rules.yaml --dry-run --start beginning --settle-time
{args.settle_time:g}` (inotify, the default);
the peer: `mtail --progs bench/mtail-one-regex --logs LOG`, following the same file in the same
run. Millicores = CPU ms (utime + stime) per wall second over {args.duration:g} s of writing, after
its first second. Latency = a line's `write()` returning to the daemon counting it as read
(/metrics scraped every 10 ms, in {args.probe:g} s of writing after the CPU window, at least
{PROBE_LINES} lines), p50 / p99 / max.
Target: at most {RATIO_TARGET:g}x mtail at each rate, p99 under {LATENCY_TARGET * 1000:.0f} ms.
CPU is counted in clock ticks of 10 ms: a figure is within {1000 / args.duration / 100:.1f}
millicores (one tick over the window), so mtail's figures of 1-2 millicores are a few ticks.

| lines/s | writes | ours (millicores) | mtail | ratio | latency p50 / p99 / max |
|---|---|---|---|---|---|
{rows}

Idle, no lines, {args.idle:g} s: ours {idle_ours:.2f} millicores, mtail {idle_theirs:.2f}.
"""
    write_section(f"wakeups-settle-{args.settle_time:g}", body)
    print(body)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
