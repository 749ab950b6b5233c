"""The cost table: steady-state CPU, idle CPU, memory and latency of `run`, beside its peers.

    .venv/bin/python -m bench.wakeups                  # the whole table (a control plane is
                                                       # started for the API sink)
    .venv/bin/python -m bench.wakeups --kubeconfig K   # the API sink against a running cluster
    .venv/bin/python -m bench.wakeups --smoke          # a tiny checked run, no report

A sidecar is paid for in every pod, so what matters at a controller's usual rates is the cost of
each wake-up, not of each line. Two sources are measured, each followed by all its readers at
once, in the same run, so that the shared machine's load weighs on all of them alike:

- one growing file, followed by `python -m sidecar run --file LOG --rules bench/rules.yaml
  --start beginning --checkpoint DIR/checkpoint.json` with the API sink (`--kubeconfig K`: a
  real kube-apiserver; the Events go to namespaces created for them), with `--dry-run`, and with
  `--dry-run --watch poll`, each with the daemon's defaults otherwise (inotify, its settle time),
  and by the peer, mtail's daemon: `mtail --progs bench/mtail-one-regex --logs LOG` (its
  cheapest program for the same job: one regex), and by `bench/floors.py file`, the least any
  asyncio follower of a file does (inotify, pread, orjson per line: what Python itself costs);
- a pod's log served by the pod log API (bench/podlog.py, which says why a local server rather
  than kwok behind the apiserver), followed by `run --pod-log app --dry-run` (what the injection
  sets up, without the writes), by its peer, `kubectl logs -f --timestamps` (the same
  request, the same bytes), and by `bench/floors.py pod-log` (aiohttp's client, orjson per line).

First all sit idle for `--idle` seconds (no lines): their idle CPU and their resident memory at
rest (VmRSS). Then, per case, a writer appends bench/generate.py's mixed log at 10, 100 and 1,000
lines/s for `--duration` seconds (at least 600 lines: a minute at 10 lines/s), either in 10 ms
batches (one `write()`, or one HTTP chunk, per 10 ms tick holding the lines due) or with one
unbuffered `write()` per line (a controller that does not buffer its log). CPU is each process's
utime + stime from /proc/PID/stat over the
writing window after its first second (millicores: CPU ms per wall second). After each window,
`--probe` seconds more of the same writing measure latency: each daemon's /metrics is scraped
every 10 ms (its cost is outside the CPU window) and a line's latency is from its `write()`
returning to the first scrape where `event_sidecar_lines_read_total` counts it (decoded and
through the rules; an Event is made then and queued; the API sink's own write latency is the
daemon's `event_sidecar_event_latency_seconds`). Quantiles are over all probe lines of a case (at
least 60: the probe is longer at 10 lines/s). Peak memory is VmHWM at the end.

Every line is checked: at the end each daemon has read exactly the lines written, and kubectl
has printed them all.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.harness import Child, launch, mtail_daemon, sidecar_run, stop, wait_http
from bench.memory import create_namespaces, make_log
from bench.podlog import PodLogServer
from bench.report import ROOT, cluster, load_average, machine, today, write_section

BENCH = ROOT / "bench"
TICK = 0.01
RATES = (10, 100, 1000)
MODES = ("batch", "line")
#: The target: at most this many times the peer's CPU at each rate.
RATIO_TARGET = 3.0
LATENCY_TARGET = 0.25
#: Seconds between scrapes of the daemons' line counts in the latency probe: fine enough for a
#: 250 ms target, and each scrape costs a daemon little (it runs on the event loop).
SCRAPE = 0.01
#: Lines each CPU window covers at least (its seconds are stretched at low rates).
CASE_LINES = 600
#: Lines each latency probe writes at least (its seconds are stretched at low rates).
PROBE_LINES = 60
#: Distinct objects in the log: each is a namespace for the API sink (`team-N`).
OBJECTS = 50
#: The file source's readers: key -> (column, options beyond the common ones).
FILE_READERS = {
    "api": ("`run` (API sink)", ["--kubeconfig", "{kubeconfig}"]),
    "dry-run": ("`--dry-run`", ["--dry-run"]),
    "poll": ("`--dry-run --watch poll`", ["--dry-run", "--watch", "poll"]),
}
NAMESPACE, POD, CONTAINER = "bench", "controller-0", "app"
FLOOR_TITLE = "Python floor (asyncio, inotify, orjson)"
FLOOR_TITLE_POD_LOG = "Python floor (aiohttp, orjson)"


@dataclass(frozen=True)
class Plan:
    """What each source's readers go through."""

    idle: float
    duration: float
    probe: float
    cases: list[tuple[int, str]]
    verbose: bool
    #: Lines each CPU window covers at least (its seconds are stretched at low rates).
    case_lines: int = CASE_LINES


@dataclass
class Reader:
    """One process following the source, and what was measured of it."""

    key: str
    title: str
    child: Child
    #: Ours (a daemon with /metrics) or the peer.
    ours: bool
    idle_mc: float = 0.0
    rest_kib: int = 0
    peak_kib: int = 0
    #: Millicores per (rate, mode).
    cpu: dict[tuple[int, str], float] = field(default_factory=dict)
    #: Line latencies per (rate, mode), seconds.
    latency: dict[tuple[int, str], list[float]] = field(default_factory=dict)


class Writer:
    """Appends `lines` through `out` at `rate` lines/s, in 10 ms batches or one write() per
    line; `written` = [(monotonic time the write returned, lines written so far)]."""

    def __init__(self, out: Callable[[bytes], object], lines: list[bytes]) -> None:
        self.out = out
        self.lines = lines
        self.next = 0
        self.written: list[tuple[float, int]] = []

    def run(self, rate: int, mode: str, duration: float) -> None:
        began = time.monotonic()
        done = 0
        while True:
            elapsed = time.monotonic() - began
            if elapsed >= duration:
                return
            due = int(elapsed * rate) - done
            if due > 0:
                chunk = self.lines[self.next : self.next + due]
                if mode == "batch":
                    self.out(b"".join(chunk))
                    self.next += due
                    self.written.append((time.monotonic(), self.next))
                else:
                    for line in chunk:
                        self.out(line)
                        self.next += 1
                        self.written.append((time.monotonic(), self.next))
                done += due
            if mode == "batch":
                time.sleep(TICK - (time.monotonic() - began) % TICK)
            else:
                time.sleep(max(0.0, began + (done + 1) / rate - time.monotonic()))


_LINES_READ = re.compile(rb"^event_sidecar_lines_read_total\{[^}]*\} (\S+)$", re.M)


def lines_read(child: Child) -> float:
    """The daemon's count of lines read: only that family asked for (`name[]`, which
    prometheus_client's exposition honours) and picked out with a regex, so that a scrape every
    10 ms costs the daemon and this process little (parsing whole expositions at that rate made
    the probe itself late on a loaded machine)."""
    url = child.url + "?name[]=event_sidecar_lines_read_total"
    with urllib.request.urlopen(url, timeout=5) as answer:
        return sum(float(value) for value in _LINES_READ.findall(answer.read()))


def probe_latency(
    writer: Writer, ours: list[Child], rate: int, mode: str, seconds: float
) -> list[list[float]]:
    """Write for `seconds` more while scraping each daemon's line count every `SCRAPE`; per
    daemon, each line's latency (write returned -> first scrape that counts it)."""
    seen: list[list[tuple[float, float]]] = [[] for _ in ours]
    thread = threading.Thread(target=writer.run, args=(rate, mode, seconds))
    first = len(writer.written)
    thread.start()
    while thread.is_alive():
        for index, child in enumerate(ours):
            seen[index].append((time.monotonic(), lines_read(child)))
        time.sleep(SCRAPE)
    target = writer.next
    deadline = time.monotonic() + 5
    for index, child in enumerate(ours):
        while time.monotonic() < deadline:
            count = lines_read(child)
            seen[index].append((time.monotonic(), count))
            if count >= target:
                break
            time.sleep(SCRAPE)
    latencies: list[list[float]] = []
    for scrapes in seen:
        mine, position = [], 0
        for written_at, upto in writer.written[first:]:
            while position < len(scrapes) and scrapes[position][1] < upto:
                position += 1
            if position == len(scrapes):
                raise SystemExit(f"line {upto} never counted by a daemon")
            mine.append(max(0.0, scrapes[position][0] - written_at))
        latencies.append(mine)
    return latencies


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(readers: list[Reader], writer: Writer, plan: Plan) -> None:
    """Fill in each reader's figures: idle, rest, then each case, then peak."""
    idle, probe, verbose = plan.idle, plan.probe, plan.verbose
    time.sleep(2)  # all settle after their start
    before = [reader.child.cpu_seconds() for reader in readers]
    time.sleep(idle)
    for reader, cpu in zip(readers, before, strict=True):
        reader.idle_mc = (reader.child.cpu_seconds() - cpu) / idle * 1000
        reader.rest_kib = reader.child.vm("VmRSS")
    ours = [reader for reader in readers if reader.ours]
    for rate, mode in plan.cases:
        seconds = case_seconds(plan, rate)
        thread = threading.Thread(target=writer.run, args=(rate, mode, seconds + 1))
        thread.start()
        time.sleep(1)
        began, before = time.monotonic(), [reader.child.cpu_seconds() for reader in readers]
        thread.join()
        wall = time.monotonic() - began
        for reader, cpu in zip(readers, before, strict=True):
            reader.cpu[rate, mode] = (reader.child.cpu_seconds() - cpu) / wall * 1000
        seconds = max(probe, PROBE_LINES / rate)
        latencies = probe_latency(writer, [reader.child for reader in ours], rate, mode, seconds)
        for reader, mine in zip(ours, latencies, strict=True):
            reader.latency[rate, mode] = mine
        if verbose:
            print(
                f"{rate} lines/s {mode}: "
                + ", ".join(
                    f"{reader.key} {reader.cpu[rate, mode]:.1f} mc"
                    + (
                        f" (p99 {quantile(reader.latency[rate, mode], 0.99) * 1000:.0f} ms)"
                        if reader.ours
                        else ""
                    )
                    for reader in readers
                ),
                flush=True,
            )
        time.sleep(1)
    for reader in readers:
        reader.peak_kib = reader.child.vm("VmHWM")
    for reader in ours:
        read = lines_read(reader.child)
        if read != writer.next:
            raise SystemExit(f"{reader.key} read {read:.0f} lines of {writer.next}")


def case_seconds(plan: Plan, rate: int) -> float:
    """Seconds of CPU window at `rate`: at least `duration`, and long enough for
    `case_lines` lines, so that the few clock ticks a peer uses at 10 lines/s are counted over
    a minute rather than 20 s."""
    return max(plan.duration, plan.case_lines / rate)


def _lines(plan: Plan, work: Path) -> list[bytes]:
    needed = sum(
        rate * (case_seconds(plan, rate) + 1 + max(plan.probe, PROBE_LINES / rate))
        for rate, _ in plan.cases
    )
    lines, _ = make_log(int(needed) + 1000, OBJECTS, work, 1)
    return lines


def _common(work: Path) -> list[str]:
    return ["--rules", str(BENCH / "rules.yaml"), "--checkpoint", str(work / "checkpoint.json")]


def file_source(
    keys: list[str], kubeconfig: str | None, settle: float | None, plan: Plan
) -> list[Reader]:
    """The file source's readers (`keys` of FILE_READERS) beside mtail, measured."""
    with tempfile.TemporaryDirectory(prefix="wakeups-") as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        lines = _lines(plan, work)
        log = work / "app.log"
        log.touch()
        readers = []
        for key in keys:
            title, options = FILE_READERS[key]
            folder = work / key  # each daemon's checkpoint apart: in a pod there is one
            folder.mkdir()
            argv = ["--file", str(log), "--start", "beginning", *_common(folder)]
            argv += [option.format(kubeconfig=kubeconfig) for option in options]
            if settle is not None:
                argv += ["--settle-time", f"{settle:g}"]
            child = stack.enter_context(sidecar_run(folder, argv, host=f"wakeups-{key}"))
            readers.append(Reader(key, title, child, ours=True))
        floor = stack.enter_context(floor_reader("file", str(log), work, settle))
        readers.append(Reader("floor", FLOOR_TITLE, floor, ours=False))
        mtail = stack.enter_context(mtail_daemon(work, BENCH / "mtail-one-regex", str(log)))
        readers.append(Reader("mtail", "mtail daemon (one regex)", mtail, ours=False))
        with log.open("ab", buffering=0) as out:
            writer = Writer(out.write, lines)
            measure(readers, writer, plan)
        stack.close()
        check_floor(floor, writer.next)
    return readers


@contextlib.contextmanager
def floor_reader(kind: str, source: str, work: Path, settle: float | None) -> Iterator[Child]:
    """A Python floor (bench/floors.py, `kind` file or pod-log) reading `source` with the
    daemon's settle time."""
    argv = [sys.executable, "-m", "bench.floors", kind, source]
    if settle is not None:
        argv += ["--settle-time", f"{settle:g}"]
    child = Child(launch(argv, work / "floor.stderr"), "", work / "floor.stderr")
    try:
        yield child
    finally:
        stop(child.process)


def check_floor(floor: Child, written: int) -> None:
    """The floor, stopped, printed the number of lines it read last: all of them."""
    counted = floor.stderr().split()
    if counted[-1:] != [str(written)]:
        raise SystemExit(
            f"the Python floor read {counted[-1:]} lines of {written}:\n{floor.stderr()}"
        )


@contextlib.contextmanager
def kubectl_logs(kubectl: Path, kubeconfig: Path, work: Path) -> Iterator[Child]:
    """`kubectl logs -f --timestamps` of the benchmark's pod, printing to a file."""
    argv = [str(kubectl), "--kubeconfig", str(kubeconfig), "--cache-dir", str(work / "cache")]
    argv += ["logs", "-f", "--timestamps", POD, "-c", CONTAINER, "-n", NAMESPACE]
    with (work / "kubectl.out").open("wb") as out, (work / "kubectl.err").open("wb") as err:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
    try:
        yield Child(process, "", work / "kubectl.err")
    finally:
        stop(process)


def pod_log_source(kubectl: Path, plan: Plan) -> list[Reader]:
    """`run --pod-log` beside `kubectl logs -f`, on one stream of the local pod log API."""
    server = PodLogServer(NAMESPACE, POD, CONTAINER).start()
    try:
        with tempfile.TemporaryDirectory(prefix="podlog-") as tmp, contextlib.ExitStack() as stack:
            work = Path(tmp)
            lines = _lines(plan, work)
            kubeconfig = server.kubeconfig(work / "kubeconfig")
            argv = ["--pod-log", CONTAINER, "--pod", POD, "--namespace", NAMESPACE]
            argv += ["--kubeconfig", str(kubeconfig), "--dry-run", *_common(work)]
            ours = stack.enter_context(sidecar_run(work, argv, host=POD))
            url = f"http://127.0.0.1:{server.port}/api/v1/namespaces/{NAMESPACE}/pods/{POD}/log"
            url += f"?container={CONTAINER}&follow=true&timestamps=true"
            floor = stack.enter_context(floor_reader("pod-log", url, work, None))
            peer = stack.enter_context(kubectl_logs(kubectl, kubeconfig, work))
            readers = [
                Reader("pod-log", "`run --pod-log --dry-run`", ours, ours=True),
                Reader("floor", FLOOR_TITLE_POD_LOG, floor, ours=False),
                Reader("kubectl", "`kubectl logs -f`", peer, ours=False),
            ]
            wait_http(ours.url, "the daemon")
            writer = Writer(server.append, lines)
            measure(readers, writer, plan)
            stack.close()
            check_floor(floor, writer.next)
            deadline = time.monotonic() + 10
            while len((work / "kubectl.out").read_bytes().splitlines()) < writer.next:
                if time.monotonic() > deadline:
                    raise SystemExit(f"kubectl printed fewer lines than {writer.next}")
                time.sleep(0.1)
    finally:
        server.stop()
    return readers


def _exit(signum: int, _frame: object) -> None:
    """SIGTERM: unwind, so the daemons, mtail and the control plane are stopped."""
    raise SystemExit(128 + signum)


def _kubectl() -> Path:
    from tests.controlplane import build_control_plane  # noqa: PLC0415 - the cached kubectl

    return build_control_plane() / "kubectl"


def mib(kib: float) -> str:
    return f"{kib / 1024:.1f}"


def _case_name(rate: int, mode: str) -> str:
    return f"{rate:,} ({'10 ms batches' if mode == 'batch' else 'one write() per line'})"


def cost_table(
    readers: list[Reader], peer: Reader, cases: list[tuple[int, str]], unit: str = "write()"
) -> str:
    """The issue's table: millicores per case, with the ratio to the peer; idle; memory."""
    ours = [reader for reader in readers if reader is not peer]
    head = "| lines/s | " + " | ".join(r.title for r in ours) + f" | {peer.title} |"
    rows = [head, "|---" * (len(ours) + 2) + "|"]
    for rate, mode in cases:
        theirs = peer.cpu[rate, mode]
        cells = []
        for reader in ours:
            mine = reader.cpu[rate, mode]
            ratio = f"{mine / theirs:.1f}x" if theirs else "inf"
            if not reader.ours:  # the floor: no /metrics to probe
                cells.append(f"{mine:.1f} ({ratio})")
                continue
            p99 = quantile(reader.latency[rate, mode], 0.99) * 1000
            cells.append(f"{mine:.1f} ({ratio}; p99 {p99:.0f} ms)")
        name = _case_name(rate, mode).replace("write()", unit)
        rows.append(f"| {name} | " + " | ".join(cells) + f" | {theirs:.1f} |")
    idle = [f"{r.idle_mc:.2f}" for r in ours]
    rows.append("| idle, no lines | " + " | ".join(idle) + f" | {peer.idle_mc:.2f} |")
    memory = [f"{mib(r.rest_kib)} / {mib(r.peak_kib)}" for r in ours]
    rows.append(
        "| resident memory at rest / peak (MiB) | "
        + " | ".join(memory)
        + f" | {mib(peer.rest_kib)} / {mib(peer.peak_kib)} |"
    )
    return "\n".join(rows)


def verdicts(readers: list[Reader], peer: Reader, cases: list[tuple[int, str]]) -> str:
    floors = [r for r in readers if r.key == "floor"]
    lines = []
    for reader in (r for r in readers if r.ours):
        worst = max(reader.cpu[c] / peer.cpu[c] if peer.cpu[c] else math.inf for c in cases)
        p99 = max(quantile(reader.latency[c], 0.99) for c in cases)
        met = worst <= RATIO_TARGET and p99 < LATENCY_TARGET
        line = (
            f"{reader.title}: at most {worst:.1f}x {peer.title} over the cases, p99 latency at "
            f"most {p99 * 1000:.0f} ms: {'met' if met else '**not met**'}; idle "
            f"{reader.idle_mc:.2f} millicores against {peer.idle_mc:.2f}"
        )
        for floor in floors:
            over = [reader.cpu[c] / floor.cpu[c] for c in cases if floor.cpu[c]]
            if over:
                line += f"; {min(over):.1f}-{max(over):.1f}x the Python floor"
        lines.append(line)
    return "\n".join(f"- {line}" for line in lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per case")
    parser.add_argument("--idle", type=float, default=20.0, help="seconds of idle CPU")
    parser.add_argument("--probe", type=float, default=3.0, help="seconds of latency probe")
    parser.add_argument(
        "--settle-time", type=float, help="the daemons' --settle-time (default: theirs)"
    )
    parser.add_argument(
        "--readers",
        default="api,dry-run,poll",
        help="the file source's readers beside mtail: api, dry-run, poll",
    )
    parser.add_argument(
        "--sources", default="file,pod-log", help="file and/or pod-log (default both)"
    )
    parser.add_argument("--kubeconfig", help="the API sink's cluster (default: start one)")
    parser.add_argument("--smoke", action="store_true", help="tiny run, checks only, no report")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _exit)
    cases = [(rate, mode) for rate in RATES for mode in MODES]
    keys = [key for key in args.readers.split(",") if key]
    sources = [source for source in args.sources.split(",") if source]
    if args.smoke:
        args.duration, args.idle, args.probe = 2.0, 1.0, 1.0
        cases = [(100, "batch"), (100, "line")]
        keys = ["api", "dry-run"] if args.kubeconfig else ["dry-run"]
    plan = Plan(
        args.idle,
        args.duration,
        args.probe,
        cases,
        verbose=not args.smoke,
        case_lines=0 if args.smoke else CASE_LINES,
    )
    load_before = load_average()
    began = time.monotonic()
    origin = ""
    files: list[Reader] = []
    pods: list[Reader] = []
    with contextlib.ExitStack() as stack:
        kubeconfig = None
        if "file" in sources and "api" in keys:
            kubeconfig, origin = stack.enter_context(cluster(args.kubeconfig))
            namespaces = create_namespaces(kubeconfig, OBJECTS)
            origin += f"; {namespaces} namespaces created for the log's objects"
        if "file" in sources:
            files = file_source(keys, kubeconfig, args.settle_time, plan)
    if "pod-log" in sources:
        pods = pod_log_source(_kubectl(), plan)
    load_after = load_average()
    if args.smoke:
        print(f"smoke ok: {len(cases)} cases, {len(files) + len(pods)} readers")
        return
    command = "python -m bench.wakeups " + " ".join(
        f"--{name} {value:g}"
        for name, value in (
            ("duration", args.duration),
            ("idle", args.idle),
            ("probe", args.probe),
        )
    )
    if args.settle_time is not None:
        command += f" --settle-time {args.settle_time:g}"
    if args.readers != "api,dry-run,poll":
        command += f" --readers {args.readers}"
    if args.sources != "file,pod-log":
        command += f" --sources {args.sources}"
    mtail_version = subprocess.run(
        ["mtail", "--version"], capture_output=True, text=True, check=True
    ).stdout.split(" git ")[0]
    settle = (
        f"`--settle-time {args.settle_time:g}`"
        if args.settle_time is not None
        else "the default settle time"
    )
    sections = []
    if files:
        mtail = files[-1]
        sections.append(
            f"""### A file, beside mtail

{cost_table(files, mtail, cases)}

{verdicts(files, mtail, cases)}

Ours follow with inotify and {settle}; `--watch poll` looks every 250 ms, as mtail does (its
default `--poll_interval`). The Python floor is `bench/floors.py file` with the same settle
time: asyncio, inotify, a pread and orjson per line, nothing else (no rules, metrics or
checkpoint), so it is what any asyncio follower of this file pays per wake-up.
{f"The API sink used {origin}." if origin else ""}"""
        )
    if pods:
        kubectl = pods[-1]
        sections.append(
            f"""### A pod's log, beside `kubectl logs -f`

{cost_table(pods, kubectl, cases, unit="chunk")}

{verdicts(pods, kubectl, cases)}

All read one stream each from bench/podlog.py's pod log API on loopback, the same request
(`follow=true&timestamps=true`) and the same chunks; one chunk per line is an unbuffered
controller whose every write the kubelet sends on at once. The Python floor is
`bench/floors.py pod-log`: aiohttp's client with the daemon's settle time, orjson per line,
nothing else."""
        )
    body = f"""## Cost: CPU per rate, idle, memory and latency, beside the peers

`{command}` on {today()}; {machine()}; {mtail_version}. Load average {load_before} before,
{load_after} after (a shared machine: 2 cores, other work running; all readers of a source ran
at once, so the load weighs on each alike); {time.monotonic() - began:.0f} s in all.

Millicores = CPU ms (utime + stime, all threads) per wall second over {args.duration:g} s of
writing per case (at least {CASE_LINES} lines: {CASE_LINES // 10} s at 10 lines/s), after its
first second; CPU is counted in clock ticks of 10 ms, so a figure is within
{1000 / args.duration / 100:.1f} millicores ({1000 / (CASE_LINES / 10) / 100:.2f} at 10 lines/s),
and the peers' figures of 1-2 millicores are a few ticks. In brackets: the ratio to the peer
(target: at most {RATIO_TARGET:g}x) and the p99
of a line's latency from its `write()` to the daemon counting it as read (target: under
{LATENCY_TARGET * 1000:.0f} ms), over at least {PROBE_LINES} lines per case after the CPU window.
Idle: {args.idle:g} s with no lines, after start-up. Memory: VmRSS after the idle time, VmHWM at
the end.

{chr(10).join(chr(10) + section for section in sections)}
"""
    write_section("cost", body)
    print(body)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
