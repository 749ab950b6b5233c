"""Memory: peak RSS of `event-sidecar run` following 100 files at 10,000 lines/s, beside mtail.

    .venv/bin/python -m bench.memory --runs 5

Per run, generates a log with bench/generate.py (seed: the run's number; controller-runtime
JSON, klog, logfmt, garbage, a few over-long lines; 1,000 distinct objects; about 5 % of lines
match bench/rules.yaml) and appends its lines round-robin to 100 files at `--rate` lines/s in
10 ms batches for `--duration` seconds. Followed at the same time by

- `event-sidecar run --file 'DIR/*.log' --rules bench/rules.yaml --listen 127.0.0.1:0 --start
  beginning` plus `--dry-run` or `--kubeconfig K` (see `--sinks`), and
- the peer, mtail in its normal (daemon) mode: `mtail --progs bench/mtail --logs 'DIR/*.log'
  --port P` (bench/mtail/bench.mtail is the equivalent of bench/rules.yaml).

Peak RSS is each process's VmHWM from /proc/<pid>/status, read just before it is stopped (both
are children of the benchmark); VmRSS is also sampled every second. Checks, per run: the daemon
read every line and counted exactly the truth file's matches per rule, and mtail's match counts
equal them too (so both did the whole job). Median of the runs (min-max); writes its section of
BENCHMARKS.md.

Sinks (`--sinks`, default both, in the same run): `dry-run` keeps Events in the daemon's memory
instead of writing them (MemorySink, which retains every Event: a little more memory than
posting); `api` posts to a real kube-apiserver started here (tests/controlplane.py) or given by
`--kubeconfig`, after creating the namespaces the log names. The log's objects
(ResourceQuotaAutoscaler, a CRD kind, and Pods) do not exist there, so Events carry no uid; the
kind and object look-ups are still made. `--smoke` runs 3 s at 2,000 lines/s into 10 files, 20
objects, once (with the API if `--kubeconfig` is given, else dry-run), checks, writes nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench import generate
from bench.harness import metric_sum, mtail_daemon, samples, sidecar_run, vm
from bench.report import ROOT, cluster, machine, spread, today, write_section

BENCH = ROOT / "bench"
TICK = 0.01
#: The daemon's targets (peak under this load, and idle), in MiB.
PEAK_TARGET_MIB = 64
IDLE_TARGET_MIB = 56
_MTAIL_SAMPLE = re.compile(r'rule_matches\{prog="bench.mtail",rule="([^"]+)"\} (\d+)')


def make_log(
    lines: int, objects: int, work: Path, seed: int
) -> tuple[list[bytes], dict[str, object]]:
    """bench/generate.py's log as a list of lines, and its truth."""
    generate.OBJECTS = objects
    path = work / "source.log"
    truth = generate.generate(lines, seed, path)
    data = path.read_bytes().splitlines(keepends=True)
    path.unlink()
    return data, {"lines": truth.lines, "matched": dict(truth.matched)}


def write_files(paths: list[Path], lines: list[bytes], rate: int, duration: float) -> float:
    """Append `lines` round-robin to `paths` at `rate` lines/s; return the seconds it took."""
    fds = [os.open(path, os.O_WRONLY | os.O_APPEND) for path in paths]
    total = min(len(lines), int(rate * duration))
    written = 0
    start = time.monotonic()
    try:
        while written < total:
            now = time.monotonic()
            due = min(total, int((now - start) * rate))
            for number in range(written, due):
                os.write(fds[number % len(fds)], lines[number])
            written = due
            time.sleep(max(0.0, TICK - (time.monotonic() - now)))
    finally:
        for fd in fds:
            os.close(fd)
    return time.monotonic() - start


class Sampler:
    """VmRSS of some pids, every second, on a thread."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.samples: dict[str, list[int]] = {name: [] for name in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            for name, pid in self.pids.items():
                with contextlib.suppress(OSError, KeyError):
                    self.samples[name].append(vm(pid, "VmRSS"))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class RunResult:
    sink: str
    ours_hwm: int
    theirs_hwm: int
    ours_idle: int
    theirs_idle: int
    ours_rss: list[int]
    theirs_rss: list[int]
    ours_cpu: float
    theirs_cpu: float
    achieved_rate: float
    catch_up: float
    emitted: float
    dropped: dict[str, float]


def one_run(
    lines: list[bytes],
    truth: dict[str, object],
    *,
    files: int,
    rate: int,
    duration: float,
    sink: str,
    kubeconfig: str | None,
) -> RunResult:
    with tempfile.TemporaryDirectory(prefix="memory-") as tmp:
        work = Path(tmp)
        logs = work / "logs"
        logs.mkdir()
        paths = [logs / f"app-{index:03d}.log" for index in range(files)]
        for path in paths:
            path.touch()
        glob = str(logs / "*.log")
        target = ["--dry-run"] if sink == "dry-run" else ["--kubeconfig", str(kubeconfig)]
        options = ["--file", glob, "--rules", str(BENCH / "rules.yaml"), "--start", "beginning"]
        options += ["--checkpoint", str(work / "checkpoint.json"), *target]
        with (
            sidecar_run(work, options, host="memory-bench-0") as ours,
            mtail_daemon(work, BENCH / "mtail", glob) as theirs,
        ):
            time.sleep(0.5)  # let mtail find the files
            idle = ours.vm("VmRSS"), theirs.vm("VmRSS")
            sampler = Sampler({"ours": ours.pid, "theirs": theirs.pid})
            cpu0 = ours.cpu_seconds(), theirs.cpu_seconds()
            took = write_files(paths, lines, rate, duration)
            total = min(len(lines), int(rate * duration))
            ended = time.monotonic()
            matched = truth["matched"]
            assert isinstance(matched, dict)
            deadline = ended + 60
            while True:
                ours_text = ours.metrics()
                read = metric_sum(ours_text, "event_sidecar_lines_read_total")
                theirs_matches = {
                    rule: int(n) for rule, n in _MTAIL_SAMPLE.findall(theirs.metrics())
                }
                if read >= total and theirs_matches == matched:
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(
                        f"not caught up 60 s after writing: daemon read {read:.0f} of {total}; "
                        f"mtail {theirs_matches} != {matched}"
                    )
                time.sleep(0.2)
            catch_up = time.monotonic() - ended
            cpu = ours.cpu_seconds() - cpu0[0], theirs.cpu_seconds() - cpu0[1]
            sampler.stop()
            ours_matches = {
                rule: int(metric_sum(ours_text, "event_sidecar_rule_matches_total", rule=rule))
                for rule in matched
            }
            if ours_matches != matched or read != total:
                raise SystemExit(f"the daemon's counts {ours_matches} / {read} != {matched}")
            hwm = ours.vm("VmHWM"), theirs.vm("VmHWM")
            dropped = {
                labels["cause"]: value
                for labels, value in samples(ours_text, "event_sidecar_events_dropped_total")
                if value
            }
            emitted = metric_sum(ours_text, "event_sidecar_events_emitted_total")
    wall = took + catch_up
    return RunResult(
        sink,
        hwm[0],
        hwm[1],
        idle[0],
        idle[1],
        sampler.samples["ours"],
        sampler.samples["theirs"],
        100 * cpu[0] / wall,
        100 * cpu[1] / wall,
        total / took,
        catch_up,
        emitted,
        dropped,
    )


def create_namespaces(kubeconfig: str, objects: int) -> int:
    """Create (if missing) every namespace generate.py's Events go to: team-N and apps."""
    from kubernetes import client, config  # noqa: PLC0415

    names = {f"team-{index}" for index in range(objects)} | {"apps"}
    api = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    core = client.CoreV1Api(api)
    existing = {item.metadata.name for item in core.list_namespace().items if item.metadata}
    for name in sorted(names - existing):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    api.close()
    return len(names)


def _exit(signum: int, _frame: object) -> None:
    """SIGTERM: unwind, so the daemon, mtail and the control plane are stopped."""
    raise SystemExit(128 + signum)


def mib(kib: float) -> str:
    return f"{kib / 1024:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=10_000, help="lines/s, all files together")
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sinks", default="dry-run,api", help="dry-run and/or api")
    parser.add_argument("--kubeconfig", help="use this running cluster instead of starting one")
    parser.add_argument("--smoke", action="store_true", help="tiny run, checks only, no report")
    args = parser.parse_args()
    if args.smoke:
        args.rate, args.files, args.objects, args.duration, args.runs = 2000, 10, 20, 3.0, 1
        args.sinks = "api" if args.kubeconfig else "dry-run"
    sinks = [sink for sink in args.sinks.split(",") if sink]
    began = time.monotonic()
    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    signal.signal(signal.SIGTERM, _exit)
    total = int(args.rate * args.duration)
    results: list[RunResult] = []
    origin = ""
    with contextlib.ExitStack() as stack:
        kubeconfig = None
        if "api" in sinks:
            kubeconfig, origin = stack.enter_context(cluster(args.kubeconfig))
            namespaces = create_namespaces(kubeconfig, args.objects)
            origin += f"; {namespaces} namespaces created for the log's objects"
        for run in range(args.runs):
            # A different seed per run: with the API sink, a log written again would make Events
            # of the same line-derived names, which the apiserver refuses (409 conflict).
            with tempfile.TemporaryDirectory(prefix="memory-log-") as tmp:
                lines, truth = make_log(total, args.objects, Path(tmp), seed=run + 1)
            for sink in sinks:
                result = one_run(
                    lines,
                    truth,
                    files=args.files,
                    rate=args.rate,
                    duration=args.duration,
                    sink=sink,
                    kubeconfig=kubeconfig,
                )
                results.append(result)
                print(
                    f"run {run} {sink}: daemon VmHWM {mib(result.ours_hwm)} MiB "
                    f"(cpu {result.ours_cpu:.0f} %), mtail {mib(result.theirs_hwm)} MiB "
                    f"(cpu {result.theirs_cpu:.0f} %); {result.achieved_rate:,.0f} lines/s "
                    f"written, caught up {result.catch_up:.1f} s after; emitted "
                    f"{result.emitted:.0f}, dropped {result.dropped}",
                    file=sys.stderr,
                    flush=True,
                )
    if args.smoke:
        result = results[0]
        print(
            f"smoke ok: {int(args.rate * args.duration)} lines into {args.files} files "
            f"({result.sink}); VmHWM daemon {mib(result.ours_hwm)} MiB, "
            f"mtail {mib(result.theirs_hwm)} MiB"
        )
        return
    load_after = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    body = report(
        args,
        sinks,
        results=results,
        truth=truth,
        origin=origin,
        load_before=load_before,
        load_after=load_after,
        began=began,
    )
    write_section("memory", body)
    print(body)


def report(
    args: argparse.Namespace,
    sinks: list[str],
    *,
    results: list[RunResult],
    truth: dict[str, object],
    origin: str,
    load_before: str,
    load_after: str,
    began: float,
) -> str:
    mtail_version = subprocess.run(
        ["mtail", "--version"], capture_output=True, text=True, check=True
    ).stdout.split(" git")[0]
    rows, verdicts = [], []
    for sink in sinks:
        mine = [r for r in results if r.sink == sink]
        for who, hwm, idle, cpu, rss in (
            (
                f"event-sidecar run ({sink})",
                [r.ours_hwm for r in mine],
                [r.ours_idle for r in mine],
                [r.ours_cpu for r in mine],
                [r.ours_rss for r in mine],
            ),
            (
                f"mtail (beside {sink})",
                [r.theirs_hwm for r in mine],
                [r.theirs_idle for r in mine],
                [r.theirs_cpu for r in mine],
                [r.theirs_rss for r in mine],
            ),
        ):
            h = spread([float(v) for v in hwm])
            i = spread([float(v) for v in idle])
            c = spread(cpu)
            early = spread([float(s[min(4, len(s) - 1)]) for s in rss if s])
            last = spread([float(s[-1]) for s in rss if s])
            rows.append(
                f"| {who} | **{mib(h[0])}** ({mib(h[1])}-{mib(h[2])}) | "
                f"{mib(i[0])} ({mib(i[1])}-{mib(i[2])}) | {mib(early[0])} | "
                f"{mib(last[0])} | {c[0]:.0f} ({c[1]:.0f}-{c[2]:.0f}) |"
            )
        ours = spread([float(r.ours_hwm) for r in mine])
        theirs = spread([float(r.theirs_hwm) for r in mine])
        idle_ours = spread([float(r.ours_idle) for r in mine])
        met = "met" if ours[0] <= PEAK_TARGET_MIB * 1024 else "**not met**"
        idle_met = "met" if idle_ours[0] <= IDLE_TARGET_MIB * 1024 else "**not met**"
        verdicts.append(
            f"{sink}: peak median {mib(ours[0])} MiB, worst run {mib(ours[2])} MiB: {met}; "
            f"idle median {mib(idle_ours[0])} MiB: {idle_met}; "
            f"{ours[0] / theirs[0]:.1f}x mtail's peak of {mib(theirs[0])} MiB"
        )
        catch = spread([r.catch_up for r in mine])
        rate = spread([r.achieved_rate for r in mine])
        emitted = spread([r.emitted for r in mine])
        drops = sorted({f"{k}" for r in mine for k in r.dropped})
        verdicts[-1] += (
            f" (written at {rate[0]:,.0f} lines/s; both caught up {catch[0]:.1f} s "
            f"({catch[1]:.1f}-{catch[2]:.1f}) after the writer stopped; Events emitted "
            f"{emitted[0]:,.0f}; drops: {', '.join(drops) or 'none'})"
        )
    matched = truth["matched"]
    assert isinstance(matched, dict)
    api_note = f" The API sink used {origin}." if "api" in sinks else ""
    kubeconfig_flag = " --kubeconfig K" if args.kubeconfig else ""
    return f"""
## Memory: `event-sidecar run` following {args.files} files at {args.rate:,} lines/s

`.venv/bin/python -m bench.memory --runs {args.runs}{kubeconfig_flag}` on {today()}; {machine()};
{mtail_version}; event-sidecar 0.1.0. Load average {load_before} before, {load_after} after
(shared machine); {time.monotonic() - began:.0f} s in all.

Per run, {int(args.rate * args.duration):,} lines of bench/generate.py's mix (seed = run number,
{args.objects:,} distinct objects; {sum(matched.values()):,} lines of the last run's log match
bench/rules.yaml) are
appended round-robin to {args.files} files at {args.rate:,} lines/s for {args.duration:.0f} s,
while both readers follow the glob from the start: `event-sidecar run --file 'DIR/*.log' --rules
bench/rules.yaml --start beginning` (`--dry-run`, or `--kubeconfig K` to post to the API) and
the peer, `mtail --progs bench/mtail --logs 'DIR/*.log'` (normal mode, polling every 250 ms).
Every run checked that the daemon read every line and counted exactly the truth's matches per
rule, and that mtail's counts equal them too.{api_note} dry-run keeps the Events in memory
(MemorySink retains all of them), so it slightly overstates what posting needs; with the API
sink the Events go to namespaces created for the purpose, but their objects (a CRD kind that is
not installed; Pods) do not exist, so each Event carries no uid after its look-up.

Peak RSS is VmHWM from /proc/<pid>/status; idle RSS is VmRSS once both serve their metrics and
before the first line is written; RSS at 5 s and at the end are VmRSS samples (medians). Median
of {args.runs} runs (min-max):

| process | peak RSS (MiB) | idle RSS (MiB) | RSS at 5 s | RSS at end | CPU % of a core |
|---|---|---|---|---|---|
{chr(10).join(rows)}

Targets for the daemon, peak <= {PEAK_TARGET_MIB} MiB and idle <= {IDLE_TARGET_MIB} MiB: \
{"; ".join(verdicts)}.

Nearly all of the idle figure is imports; the section "Start-up and imports" (bench/startup.py)
breaks it down by package. The daemon serves `/metrics` and its probes without aiohttp's server
(`sidecar/runtime/status_server.py`); with the API sink it loads aiohttp's client, which makes its
writes (`sidecar/kube/sender.py`, about 10 MiB of the api figures), and the `kubernetes` client,
which loads the configuration and looks objects up.
"""


if __name__ == "__main__":
    main()
