"""Sustained writes: distinct Events/s that `event-sidecar run` stores in a real kube-apiserver,
beside a plain concurrent client writing the same Events.

    .venv/bin/python -m bench.writes --runs 3

Starts a real etcd + kube-apiserver (tests/controlplane.py; `--kubeconfig` uses a running cluster
instead, without the servers' CPU), creates a namespace with `--objects` ConfigMaps (default: one
per 20 Events), then per run measures each writer in turn (the order rotates from run to run):

- `event-sidecar run --file LOG --rules R --kubeconfig K --listen 127.0.0.1:0 --start beginning
  --aggregate-max 1000000 --events-api v1 --writes 8` (and `--writes 1`, the serial writer, for
  comparison), started on an empty file and ready (/readyz); then `--events` transition lines,
  generated beforehand, are appended to the file in one write. Every line flips one object's
  phase (round-robin over the objects) and carries a unique id that the rule copies into the
  message, so each line is one distinct Event: nothing is deduplicated, aggregation is raised
  out of the way (`--aggregate-max`, as bench/latency.py) and each object gets at most 20 Events,
  under client-go's spam-filter burst of 25, which stays at its default (checked: nothing
  dropped);
- the peer, bench/writes_peer.py in its own process: aiohttp with 8 requests in flight POSTing
  the same Events (same namespace, objects, messages, and the body the sidecar builds, made
  here with `sidecar.core.events.corev1.make_event` and the objects' uid and resourceVersion),
  loaded before its clock starts.

The clock runs from the append (or the peer's go) to the last Event's ADDED notification on a
watch of the namespace (kubernetes client, in this process), so both are timed the same way:
Events/s = Events / those seconds. Checked for every writer: each id arrived on the watch, the
apiserver's own `apiserver_request_total` counted one `POST 201` per Event and no other write
on events, and the stored Events of the sidecar and the peer have the same fields; for the
daemon also `events_emitted_total{write="create"}` = Events, no PATCH, nothing dropped. CPU: the
writer's own (the daemon's from /proc/<pid>/stat over the same span: reading, correlation,
look-ups and writes; the peer's from its getrusage over its writes), and kube-apiserver's and
etcd's from /proc over the same span, per Event and as a share of one core. The Events are
deleted after each writer (deletecollection) so every writer meets the same store. Median of
`--runs` (min-max); the ratio to the peer is taken per run. Writes its section of
BENCHMARKS.md; `--smoke` measures 1,000 Events once per writer, checks them and writes nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import IO, Any

import aiohttp
import kubernetes
from kubernetes import client, config

from bench.harness import (
    REASON,
    Daemon,
    EventWatch,
    Transitions,
    event_requests,
    phase_rules,
    prepare,
    raw_get,
    samples,
    transition_line,
)
from bench.report import (
    ROOT,
    Cluster,
    control_plane,
    load_average,
    machine,
    process_cpu,
    spread,
    today,
    write_section,
)
from sidecar.core.events.corev1 import EventNamer, InvolvedObject, make_event

BENCH = Path(__file__).resolve().parent
COMPONENT = "writes-controller"
HOST = "writes-bench-0"
#: Events per object at most: under client-go's spam-filter burst (25), which stays at default.
PER_OBJECT = 20
IN_FLIGHT = 8
PEER = f"peer: aiohttp, {IN_FLIGHT} in flight"
#: The daemon's writers: name -> options after `run --file ... --start beginning`, one row each.
#: An events.k8s.io/v1 row (`--events-api events.k8s.io/v1`, whose recorder writes serially for
#: now) is one more entry here, plus a peer writing that API's bodies (`peer_run`) and its group
#: counted by `event_requests(api, "events.k8s.io")` in `timed`.
DAEMONS: dict[str, list[str]] = {
    "run --writes 8": ["--events-api", "v1", "--writes", "8"],
    "run --writes 1": ["--events-api", "v1", "--writes", "1"],
}
#: The rule's Events are all distinct (the id): aggregation would fold them after 10 per object.
COMMON_OPTIONS = ["--aggregate-max", "1000000"]
TARGET = ("run --writes 8", 0.8)
WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
TABLE_HEADER = "\n".join(
    [
        "| writer | Events/s stored | ratio to the peer | writer CPU ms/Event "
        "| writer CPU, % of a core | kube-apiserver CPU ms/Event | etcd CPU ms/Event "
        "| seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
)


# -- one measurement ------------------------------------------------------------------------------


@dataclass
class Measured:
    writer: str
    run: int
    events: int
    #: From the append (or the peer's go) to the last Event's ADDED on the watch.
    seconds: float
    #: The writer's own CPU seconds over the same span.
    cpu: float
    #: kube-apiserver's and etcd's CPU seconds over the same span (empty: not ours to read).
    servers: dict[str, float]
    problems: list[str] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.events / self.seconds


@dataclass(frozen=True)
class Setting:
    api: client.ApiClient
    started: Cluster
    namespace: str
    objects: dict[str, InvolvedObject]
    events: int
    timeout: float
    work: Path


def transitions(setting: Setting, prefix: str) -> list[tuple[str, str, str, str]]:
    """(object, phase, id, message) of each line, as the rule turns it into an Event."""
    lines = Transitions(setting.namespace, len(setting.objects), prefix)
    previous: dict[str, str] = {}
    out = []
    for _ in range(setting.events):
        name, phase, ident = lines.next()
        out.append(
            (name, phase, ident, f"phase {previous.get(name, 'none')} -> {phase} id={ident}")
        )
        previous[name] = phase
    return out


def server_cpu(started: Cluster) -> dict[str, float]:
    return {name: process_cpu(pid) for name, pid in started.pids.items()}


def timed(
    setting: Setting,
    writer: str,
    run: int,
    ids: list[str],
    *,
    go: Callable[[], None],
    cpu: Callable[[], float],
) -> Measured:
    """Watch, call `go()` (the clock starts), wait for every id's Event; the writer's CPU from
    `cpu()` and the servers' over the same span, and the apiserver's count of the writes."""
    watch = EventWatch(setting.api, setting.namespace)
    try:
        requests = event_requests(setting.api)
        servers = server_cpu(setting.started)
        own = cpu()
        began = time.monotonic()
        go()
        watch.wait_for(ids, setting.timeout)
        own = cpu() - own
        servers = {name: used - servers[name] for name, used in server_cpu(setting.started).items()}
        with watch.lock:
            arrived = [watch.arrived[i] for i in ids if i in watch.arrived]
    finally:
        watch.stop()
    # Writes only: the watch's own WATCH (and any read) is not the writer's.
    answered = Counter(
        {
            answer: count
            for answer, count in (event_requests(setting.api) - requests).items()
            if answer.split()[0] in WRITE_VERBS
        }
    )
    seconds = (max(arrived) if arrived else time.monotonic()) - began
    measured = Measured(writer, run, len(ids), seconds, own, servers)
    if len(arrived) != len(ids):
        measured.problems.append(
            f"{writer}: {len(ids) - len(arrived)} of {len(ids)} Events not stored within "
            f"{setting.timeout:.0f} s"
        )
    if answered["POST 201"] != len(ids) or sum(answered.values()) != len(ids):
        measured.problems.append(f"{writer}: the apiserver answered {dict(answered)}")
    measured.notes["answered"] = dict(answered)
    measured.notes["shape"] = stored_shape(setting)
    clean(setting)
    return measured


def stored_shape(setting: Setting) -> list[str]:
    """The fields of one stored Event (server-set metadata aside), to compare the writers'."""
    path = f"/api/v1/namespaces/{setting.namespace}/events?limit=1"
    items = json.loads(raw_get(setting.api, path))["items"]
    if not items:
        return []
    event = items[0]
    fields = [key for key in event if key != "metadata"]
    for key in ("involvedObject", "source"):
        fields += [f"{key}.{inner}" for inner in event.get(key, {})]
    fields += [f"metadata.{key}" for key in ("name", "namespace") if key in event["metadata"]]
    return sorted(fields)


def clean(setting: Setting) -> None:
    client.CoreV1Api(setting.api).delete_collection_namespaced_event(
        setting.namespace, _request_timeout=600
    )


def daemon_run(setting: Setting, writer: str, run: int) -> Measured:
    lines = transitions(setting, f"{run}-{writer.rsplit(maxsplit=1)[-1]}")
    data = b"".join(
        transition_line(setting.namespace, name, phase, ident) for name, phase, ident, _ in lines
    )
    work = setting.work / f"daemon-{run}-{writer.rsplit(maxsplit=1)[-1]}"
    work.mkdir()
    log, rules = work / "app.log", work / "rules.yaml"
    log.touch()
    rules.write_text(phase_rules(COMPONENT))
    daemon = Daemon(
        work,
        log,
        rules,
        setting.started.kubeconfig,
        [*COMMON_OPTIONS, *DAEMONS[writer]],
        host=HOST,
    )

    def append() -> None:
        fd = os.open(log, os.O_WRONLY | os.O_APPEND)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)

    try:
        ids = [ident for _, _, ident, _ in lines]
        measured = timed(setting, writer, run, ids, go=append, cpu=daemon.cpu_seconds)
        text = daemon.metrics()
    finally:
        daemon.stop()
    emitted = {
        labels["write"]: value
        for labels, value in samples(text, "event_sidecar_events_emitted_total")
        if value
    }
    dropped = {
        labels["cause"]: value
        for labels, value in samples(text, "event_sidecar_events_dropped_total")
        if value
    }
    requests = {
        labels["verb"]: value
        for labels, value in samples(text, "event_sidecar_api_request_duration_seconds_count")
        if value
    }
    if emitted != {"create": measured.events} or dropped:
        measured.problems.append(f"{writer}: emitted {emitted}, dropped {dropped}")
    measured.notes.update(emitted=emitted, requests=requests)
    return measured


def peer_run(setting: Setting, run: int) -> Measured:
    lines = transitions(setting, f"{run}-peer")
    namer = EventNamer()
    bodies = setting.work / f"peer-{run}.jsonl"
    with bodies.open("w") as out:
        for name, _, _, message in lines:
            event = make_event(
                involved=setting.objects[name],
                type="Normal",
                reason=REASON,
                message=message,
                component=COMPONENT,
                host=HOST,
                now=time.time(),
                name=namer(name),
            )
            path = f"/api/v1/namespaces/{setting.namespace}/events"
            out.write(json.dumps({"path": path, "body": event.to_body()}) + "\n")
    stderr_path = setting.work / f"peer-{run}.stderr"
    with stderr_path.open("wb") as stderr:
        peer = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.writes_peer",
                "--kubeconfig",
                setting.started.kubeconfig,
                "--bodies",
                str(bodies),
                "--in-flight",
                str(IN_FLIGHT),
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
    stdin, stdout = _pipes(peer)
    try:
        if stdout.readline().strip() != b"ready":
            raise SystemExit(f"the peer did not start:\n{stderr_path.read_text()[-3000:]}")

        def go() -> None:
            stdin.write(b"go\n")
            stdin.flush()

        # The peer's CPU is its own getrusage over its writes (below).
        ids = [ident for _, _, ident, _ in lines]
        measured = timed(setting, PEER, run, ids, go=go, cpu=lambda: 0.0)
        report = stdout.readline()
        peer.wait(60)
    finally:
        if peer.poll() is None:
            peer.kill()
            peer.wait()
    if not report:
        raise SystemExit(f"the peer failed:\n{stderr_path.read_text()[-3000:]}")
    result = json.loads(report)
    measured.cpu = float(result["cpu"])
    measured.notes.update(statuses=result["statuses"], peer_seconds=result["seconds"])
    if result["statuses"] != {"201": measured.events}:
        measured.problems.append(f"peer: answers {result['statuses']}")
    return measured


def _pipes(process: subprocess.Popen[bytes]) -> tuple[IO[bytes], IO[bytes]]:
    assert process.stdin is not None and process.stdout is not None
    return process.stdin, process.stdout


# -- the benchmark --------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubeconfig", help="use this running cluster instead of starting one")
    parser.add_argument("--events", type=int, default=20_000, help="Events per writer and run")
    parser.add_argument(
        "--objects", type=int, help=f"involved objects (default: one per {PER_OBJECT} Events)"
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds for one writer's Events to arrive"
    )
    parser.add_argument("--smoke", action="store_true", help="1,000 Events, one run, no report")
    args = parser.parse_args()
    if args.smoke:
        args.events, args.runs = 1000, 1
    if args.objects is None:
        args.objects = math.ceil(args.events / PER_OBJECT)
    if args.events / args.objects > PER_OBJECT:
        parser.error(f"at most {PER_OBJECT} Events per object (the spam filter's burst is 25)")
    signal.signal(signal.SIGTERM, _exit)
    before = load_average()
    began = time.monotonic()
    results: list[Measured] = []
    writers = [*DAEMONS, PEER]
    with control_plane(args.kubeconfig) as started, tempfile.TemporaryDirectory() as tmp:
        api = config.new_client_from_config(config_file=started.kubeconfig)  # type: ignore[no-untyped-call]
        try:
            server = json.loads(raw_get(api, "/version"))["gitVersion"]
            namespace, objects = prepare(api, args.objects, "bench-writes")
            setting = Setting(
                api, started, namespace, objects, args.events, args.timeout, Path(tmp)
            )
            for run in range(args.runs):
                turn = run % len(writers)
                for writer in writers[turn:] + writers[:turn]:
                    if writer == PEER:
                        measured = peer_run(setting, run)
                    else:
                        measured = daemon_run(setting, writer, run)
                    results.append(measured)
                    print(
                        f"run {run + 1}/{args.runs} {writer}: {measured.rate:,.0f} Events/s "
                        f"({measured.seconds:.1f} s), CPU {measured.cpu:.1f} s, servers "
                        f"{ {k: round(v, 1) for k, v in measured.servers.items()} }"
                        + (f"; PROBLEMS: {measured.problems}" if measured.problems else ""),
                        file=sys.stderr,
                        flush=True,
                    )
        finally:
            api.close()
    problems = [problem for measured in results for problem in measured.problems]
    shapes = {tuple(measured.notes["shape"]) for measured in results}
    if len(shapes) != 1:
        problems.append(f"the writers' stored Events differ in their fields: {shapes}")
    if problems:
        raise SystemExit("writes benchmark failed its checks:\n  " + "\n  ".join(problems))
    if args.smoke:
        rates = "; ".join(f"{m.writer} {m.rate:,.0f} Events/s" for m in results)
        print(f"smoke ok: {args.events} Events per writer; {rates}")
        return
    body = report(
        args,
        results,
        writers,
        origin=started.origin,
        server=server,
        before=before,
        after=load_average(),
        elapsed=time.monotonic() - began,
    )
    write_section("writes", body)
    print(body)


def _exit(signum: int, _frame: object) -> None:
    """SIGTERM: unwind, so the daemon, the peer and the control plane are stopped."""
    raise SystemExit(128 + signum)


def cell(values: list[float], fmt: str = "{:,.0f}") -> str:
    middle, low, high = spread(values)
    return f"{fmt.format(middle)} ({fmt.format(low)}-{fmt.format(high)})"


def ratios(results: list[Measured], writer: str) -> list[float]:
    """This writer's Events/s over the peer's, run by run."""
    peer = {m.run: m.rate for m in results if m.writer == PEER}
    return [m.rate / peer[m.run] for m in results if m.writer == writer]


def report(
    args: argparse.Namespace,
    results: list[Measured],
    writers: list[str],
    *,
    origin: str,
    server: str,
    before: str,
    after: str,
    elapsed: float,
) -> str:
    rows = []
    for writer in writers:
        mine = [m for m in results if m.writer == writer]
        per_event = {
            name: cell([1000 * m.servers[name] / m.events for m in mine], "{:.2f}")
            for name in ("kube-apiserver", "etcd")
            if all(name in m.servers for m in mine)
        }
        rows.append(
            f"| {writer} | **{cell([m.rate for m in mine])}** "
            f"| {cell(ratios(results, writer), '{:.2f}')} "
            f"| {cell([1000 * m.cpu / m.events for m in mine], '{:.2f}')} "
            f"| {cell([100 * m.cpu / m.seconds for m in mine])} "
            f"| {per_event.get('kube-apiserver', 'n/a')} | {per_event.get('etcd', 'n/a')} "
            f"| {cell([m.seconds for m in mine], '{:.1f}')} |"
        )
    name, goal = TARGET
    ratio = spread(ratios(results, name))[0]
    met = "met" if ratio >= goal else "**missed**"
    gets = [m.notes["requests"].get("get", 0) for m in results if m.writer in DAEMONS]
    lookups = f"{min(gets):.0f}" if min(gets) == max(gets) else f"{min(gets):.0f}-{max(gets):.0f}"
    return f"""
## Sustained writes: distinct Events/s into a real kube-apiserver

`.venv/bin/python -m bench.writes --runs {args.runs} --events {args.events}` on {today()};
{machine()}; {origin}; server {server}; event-sidecar {version("kube-event-sidecar")},
aiohttp {aiohttp.__version__}, kubernetes client {kubernetes.__version__}. Load average {before}
before, {after} after (the machine is shared with other work; the apiserver, etcd, the writer
and the watch share its cores); {elapsed:.0f} s in all.

Each writer stores {args.events:,} distinct core/v1 Events about {args.objects:,} ConfigMaps (at
most {PER_OBJECT} per object, round-robin) in one namespace of a real kube-apiserver. The daemon,
`event-sidecar run --file LOG --rules R --kubeconfig K --listen 127.0.0.1:0 --start beginning
--aggregate-max 1000000 --events-api v1 --writes N`, is started on an empty file and ready; then
{args.events:,} transition lines (one Event each, a unique id in the message) are appended in
one write. The peer (bench/writes_peer.py, its own process) POSTs the same Events with aiohttp,
{IN_FLIGHT} requests in flight: same objects, messages and bodies (built with the sidecar's
`make_event`, the objects' uid and resourceVersion, as its look-up finds them), loaded before
its clock starts. Time runs from the append (or the peer's go) to the last Event's ADDED on a
watch of the namespace. Every Event arrived; the apiserver counted exactly one `POST 201` per
Event for each writer; the daemon emitted every Event as a create and dropped none (the spam
filter at its default, aggregation raised out of the way); the stored Events of both have the
same fields. The daemon's time includes reading and correlating the lines and looking up each
object ({lookups} GETs per run: once, and again in a run longer than the 30 s the answers are
cached), which the peer does not do. CPU is the writer's own (the
daemon's from /proc, the peer's from getrusage) and the servers' from /proc, over the same span,
in milliseconds per Event; "% of a core" is the writer's CPU over its seconds (the daemon's
Python runs on one core at a time, so 100 % is its ceiling).
Events are deleted between writers; the order of the writers rotates
from run to run. Median of {args.runs} runs (min-max); the ratio to the peer is per run.

{TABLE_HEADER}
{chr(10).join(rows)}

Target: `{name}` at least {goal} of the peer's Events/s: {met} (median ratio {ratio:.2f}).
"""


if __name__ == "__main__":
    main()
