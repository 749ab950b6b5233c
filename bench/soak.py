"""Soak: resident memory of `event-sidecar run` over time, under steady load with log rotation.

    .venv/bin/python -m bench.soak --warm-up 20 --duration 600 --rate 500 --rotate 30

Appends bench/generate.py's mix (200 objects by default, stamped with the current time) to one
log at `--rate` lines/s in 10 ms batches, renaming it to `app.log.1` every `--rotate` seconds
(each rename replaces the previous generation, as logrotate's `rotate 1` does), while `event-sidecar
run --file DIR/app.log --rules bench/rules.yaml --dry-run` follows it with its checkpoint beside
it. VmRSS is read from /proc every second. The first `--warm-up` seconds are written at
`--warm-up-rate` (10,000 lines/s) to fill the bounded caches (the correlator's 4,096 keys, the
transition state, the Events a dry run keeps), which at a few hundred lines/s take many minutes;
then `--duration` seconds at `--rate`. Memory is flat when the RSS from `--settle` seconds into
that steady part to its end grows by less than `--flat-mib`. Also counted: checkpoint
rewrites (a new inode each: the file is replaced atomically; sampled every 0.1 s, so rewrites
closer together count once) and the bytes they wrote.

Checks that the daemon read every line written and counted exactly the truth's matches per rule.
Writes its section of BENCHMARKS.md (not with `--smoke`: 5 s of warm-up at 5,000 lines/s, 15 s
at 1,000 lines/s, rotation every 2 s, checks only).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench import generate
from bench.harness import metric_sum, sidecar_run, vm
from bench.report import ROOT, load_average, machine, today, write_section

TICK = 0.01


@dataclass
class Soak:
    """What one run saw."""

    #: (seconds since the writer started, VmRSS in KiB), every second.
    rss: list[tuple[float, int]] = field(default_factory=list)
    lines: int = 0
    rotations: int = 0
    checkpoint_writes: int = 0
    checkpoint_bytes: int = 0
    checkpoint_size: int = 0


def write_log(
    log: Path, soak: Soak, truth: generate.Truth, phases: list[tuple[int, float]], rotate: float
) -> None:
    """Append the mix to `log`, each phase at its (lines/s, seconds), rotating every `rotate` s."""
    rng = random.Random(1)
    hard = {
        (f"team-{i}", r): rng.choice(("1", "2", "4"))
        for i in range(generate.OBJECTS)
        for r in ("cpu", "memory")
    }
    pods = {f"pod-{i}": "Running" for i in range(generate.OBJECTS)}
    last_rotation = time.monotonic()
    for rate, duration in phases:
        before, start = soak.lines, time.monotonic()
        while (now := time.monotonic()) - start < duration:
            due = before + int((now - start) * rate)
            stamp = datetime.now(UTC)
            batch = [generate._line(rng, stamp, truth, hard, pods) for _ in range(due - soak.lines)]
            with log.open("a", encoding="utf-8") as out:
                out.write("".join(line + "\n" for line in batch))
            soak.lines = due
            if now - last_rotation >= rotate:
                log.replace(log.with_name(log.name + ".1"))
                log.touch()
                soak.rotations += 1
                last_rotation = now
            time.sleep(max(0.0, TICK - (time.monotonic() - now)))


def sample(pid: int, checkpoint: Path, soak: Soak, began: float, done: threading.Event) -> None:
    """VmRSS every second; checkpoint rewrites (inode changes) every 0.1 s."""
    inode, next_rss = 0, 0.0
    while not done.wait(0.1):
        try:
            info = checkpoint.stat()
        except FileNotFoundError:
            pass
        else:
            if info.st_ino != inode:
                inode = info.st_ino
                soak.checkpoint_writes += 1
                soak.checkpoint_bytes += info.st_size
                soak.checkpoint_size = info.st_size
        now = time.monotonic() - began
        if now >= next_rss:
            soak.rss.append((now, vm(pid, "VmRSS")))
            next_rss += 1.0


def run(args: argparse.Namespace) -> tuple[Soak, dict[str, int]]:
    generate.configure(objects=args.objects, transitions=0.2, changes=0.3)
    truth = generate.Truth()
    soak = Soak()
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        work = Path(tmp)
        log, checkpoint = work / "app.log", work / "checkpoint.json"
        log.touch()
        options = ["--file", str(log), "--rules", str(ROOT / "bench" / "rules.yaml"), "--dry-run"]
        with sidecar_run(
            work, [*options, "--checkpoint", str(checkpoint)], host="soak-bench-0"
        ) as daemon:
            done = threading.Event()
            began = time.monotonic()
            sampler = threading.Thread(
                target=sample, args=(daemon.pid, checkpoint, soak, began, done), daemon=True
            )
            sampler.start()
            phases = [(args.warm_up_rate, args.warm_up), (args.rate, args.duration)]
            write_log(log, soak, truth, phases, args.rotate)
            deadline = time.monotonic() + 60
            while daemon.metric("event_sidecar_lines_read_total") < soak.lines:
                if time.monotonic() > deadline:
                    raise SystemExit("the daemon did not read every line within 60 s")
                time.sleep(0.2)
            done.set()
            sampler.join()
            text = daemon.metrics()
    matched = {
        rule: int(metric_sum(text, "event_sidecar_rule_matches_total", rule=rule))
        for rule in truth.matched
    }
    if matched != dict(truth.matched):
        raise SystemExit(f"the daemon's matches {matched} != the truth's {dict(truth.matched)}")
    return soak, matched


def mib(kib: float) -> str:
    return f"{kib / 1024:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=500, help="lines/s")
    parser.add_argument("--rotate", type=float, default=30.0, help="seconds between rotations")
    parser.add_argument("--objects", type=int, default=200)
    parser.add_argument("--duration", type=float, default=600.0)
    parser.add_argument("--warm-up", type=float, default=20.0, help="seconds")
    parser.add_argument("--warm-up-rate", type=int, default=10_000, help="lines/s")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds of the steady part")
    parser.add_argument("--flat-mib", type=float, default=1.0)
    parser.add_argument("--smoke", action="store_true", help="20 s, checks only, no report")
    args = parser.parse_args()
    if args.smoke:
        args.warm_up, args.warm_up_rate, args.settle = 5.0, 5000, 2.0
        args.rate, args.rotate, args.duration = 1000, 2.0, 15.0
    load_before = load_average()
    soak, matched = run(args)
    warm = next(kib for at, kib in soak.rss if at >= args.warm_up + args.settle)
    end = soak.rss[-1][1]
    peak = max(kib for _, kib in soak.rss)
    growth = end - warm
    minutes = (args.duration - args.settle) / 60
    flat = growth < args.flat_mib * 1024
    summary = (
        f"{soak.lines:,} lines, {soak.rotations} rotations: RSS {mib(soak.rss[0][1])} MiB at "
        f"start, {mib(warm)} after warm-up, {mib(end)} at the end (peak {mib(peak)}); "
        f"{'flat' if flat else 'NOT flat'} after warm-up ({growth / 1024:+.1f} MiB, "
        f"{growth / 1024 / minutes:+.2f} MiB/min); checkpoint rewritten {soak.checkpoint_writes} "
        f"times, {soak.checkpoint_bytes / 1e6:.1f} MB in all, {soak.checkpoint_size / 1e3:.0f} KB "
        "at the end"
    )
    print(summary, file=sys.stderr)
    if args.smoke:
        print(f"smoke ok: {summary}")
        return
    step = max(1, int((args.warm_up + args.duration) / 12))
    marks = [f"{at:.0f} s: {mib(kib)}" for at, kib in soak.rss if int(at) % step == 0]
    body = f"""
## Soak: resident memory with rotation, after warm-up

`.venv/bin/python -m bench.soak --warm-up {args.warm_up:g} --duration {args.duration:g} --rate \
{args.rate} --rotate {args.rotate:g}` on {today()}; {machine()}. Load average {load_before}
before, {load_average()} after (shared machine).

bench/generate.py's mix on {args.objects} objects (a fifth of the lines quota transitions, so the
correlator's and the transition caches fill), stamped with the current time, appended to one log
at {args.warm_up_rate:,} lines/s for {args.warm_up:g} s (the warm-up), then at {args.rate:,}
lines/s for {args.duration:g} s, renamed to `app.log.1` every {args.rotate:g} s throughout,
followed by `run --dry-run` with its checkpoint. Every line was read and the matches per rule
equal the truth's ({", ".join(f"{rule} {n:,}" for rule, n in sorted(matched.items()))}).

{summary}.

VmRSS (MiB) along the run: {"; ".join(marks)}.

After warm-up means from {args.settle:g} s into the steady part (the daemon has read the
warm-up's lines by then); flat means less than {args.flat_mib:g} MiB of growth from there to the
end. Checkpoint rewrites are inode changes sampled every 0.1 s; the checkpointer
writes a content already on disk never, and on average at most 64 KiB/s.

What grows during warm-up, found with tracemalloc snapshot diffs of the daemon run in-process
(a faster soak: 1,000-2,000 lines/s, rotation every 0.05-1 s, up to 1,200 rotations): only the
bounded caches filling (the correlator's dedup and aggregation keys and the strings of the lines
they hold, the transition state, the Events a dry run keeps, each at most 4,096 or the
`--transition-keys` bound), which on {args.objects} objects take many minutes to fill at a few
hundred lines/s (hence the warm-up at a higher rate); nothing grew with rotations. Before the
checkpointer's changes the whole state (857 KB in the issue's 10-minute soak) was serialised and
fsynced every second.
"""
    write_section("soak", body)
    print(body)


if __name__ == "__main__":
    main()
