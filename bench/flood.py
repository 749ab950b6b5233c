"""API load under a flood: 100,000 transitions of ONE object in one minute, replayed into a cluster.

    .venv/bin/python -m bench.flood --runs 5

Starts a real etcd + kube-apiserver (tests/controlplane.py; `--kubeconfig` uses a running cluster
instead), and per run creates a fresh namespace with the involved object, a ConfigMap. The log is
a controller flapping that object's phase between Ready and Degraded on EVERY line (100 % of the
lines are transitions: 100,000 lines, 99,999 Events, since the first line only sets the state),
0.6 ms apart in the log's time, so all within one minute. It is replayed with

    event-sidecar replay LOG --rules R --kubeconfig K --metrics -o none --summary json

which writes to the apiserver for real, with the log's time as the correlator's clock. Two rule
variants read the same lines:

- two-messages: `phase {from} -> {to}`, so only two distinct messages: dedup and the spam filter;
- distinct-messages: the generation is in the message, so every message differs: client-go's
  aggregation ("combined from similar events") after 10 distinct messages, then the spam filter.

The writes are counted on the apiserver's side (its `apiserver_request_total` for events, POST
and PATCH, before and after; the Events read back with their counts and involved uid) and by
the sidecar's metrics (`events_emitted_total`, `events_dropped_total{cause="spam_filter"}`,
`events_aggregated_total`). The peer is client-go's allowance for the same sequence, computed by
`ClientGoModel`, a small independent model of client-go's `tools/record/events_cache.go` written
here (it does not import sidecar.core.correlate), so a bug in ours shows as a mismatch.
Checks: writes equal to client-go's (never more), the Events on the server equal the model's
(message and count), emitted + dropped == the Events the rules produced. Reports the counts
(identical in every run, or it fails) and replay's time, median of the runs (min-max); writes its
section of BENCHMARKS.md. `--smoke` replays 2,000 lines once per variant and writes nothing.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kubernetes
from kubernetes import client, config

from bench.harness import event_requests, raw_get
from bench.report import ROOT, cluster, machine, run_measured, spread, today, write_section

SIDECAR = Path(sys.executable).parent / "event-sidecar"
COMPONENT = "flapping-controller"
HOST = "flapper-0"
OBJECT = "flapper"
REASON = "PhaseChanged"
PHASES = ("Ready", "Degraded")
START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
AGGREGATE_PREFIX = "(combined from similar events): "
WRITES_HEADER = "\n".join(
    [
        "| variant | Events produced | API writes, ours (the apiserver's count) "
        "| client-go's allowance (model) | ratio | Events stored "
        "| emitted + dropped{spam_filter} = produced | aggregated_total (model) |",
        "|---|---|---|---|---|---|---|---|",
    ]
)
VARIANTS = {
    "two-messages": "phase {from} -> {to}",
    "distinct-messages": "phase {from} -> {to} (generation {generation})",
}
RULES = """\
component: {component}
rules:
  - name: phase-changed
    match: {{message: Observed phase}}
    object: {{apiVersion: v1, kind: ConfigMap, ref: ConfigMap}}
    transition: {{state: "{{phase}}", first: skip}}
    reason: {reason}
    message: "{message}"
"""


# -- the log -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flood:
    """The log's text and, independently of the sidecar, the Events its rules call for."""

    text: str
    lines: int
    seconds: float
    #: (log time in s since START, message) of every Event the rule produces, in order.
    events: list[tuple[float, str]]


def make_flood(lines: int, namespace: str, message: str, seconds: float = 60.0) -> Flood:
    """controller-runtime JSON lines, `seconds / lines` s apart, flapping the phase each line."""
    step = timedelta(seconds=seconds) / lines
    out: list[str] = []
    events: list[tuple[float, str]] = []
    previous = None
    for i in range(lines):
        when = START + step * i
        phase = PHASES[i % 2]
        generation = i + 1
        line = {
            "level": "info",
            "ts": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "logger": "controller.flapper",
            "msg": "Observed phase",
            "controller": "flapper",
            "controllerGroup": "",
            "controllerKind": "ConfigMap",
            "ConfigMap": {"name": OBJECT, "namespace": namespace},
            "namespace": namespace,
            "name": OBJECT,
            "reconcileID": str(uuid.UUID(int=i + 1)),
            "phase": phase,
            "generation": generation,
        }
        out.append(json.dumps(line, separators=(",", ":")))
        if previous is not None:  # `first: skip`: the first line only sets the state
            text = message.replace("{from}", previous).replace("{to}", phase)
            text = text.replace("{generation}", str(generation))
            events.append(((when - START).total_seconds(), text))
        previous = phase
    return Flood("\n".join(out) + "\n", lines, seconds, events)


# -- the peer: client-go's correlator ----------------------------------------------------------


@dataclass
class ModelResult:
    creates: int = 0
    patches: int = 0
    suppressed: int = 0
    #: Events turned into the combined Event by the aggregator (written or not).
    aggregated: int = 0
    #: ... of which written (passed the spam filter).
    aggregated_written: int = 0
    #: The Events as the apiserver holds them in the end: name -> (message, count).
    stored: dict[str, tuple[str, int]] = field(default_factory=dict)

    @property
    def writes(self) -> int:
        return self.creates + self.patches


class ClientGoModel:
    """client-go's `EventCorrelator` (tools/record/events_cache.go) with the default options,
    for Events of one source (component, host), reduced to what decides the writes.

    `EventCorrelate` runs, in this order:
    1. `EventAggregator.EventAggregate`: key (source, involvedObject minus fieldPath, type,
       reason); a record of the distinct messages (`localKeys`) seen within `maxIntervalInSeconds`
       (600 s) of the previous similar event. Under `maxEvents` (10) distinct messages the event
       passes with its full key; at 10, one message is popped and the event becomes a new
       "(combined from similar events): <message>" Event (count 1) keyed by the aggregate key.
    2. `eventLogger.eventObserve`: an earlier observation under the key turns the event into a
       PATCH of that Event (its name, count + 1); the observation is recorded either way.
    3. `EventSourceObjectSpamFilter.Filter`: a `rate.Limiter` per (source, involvedObject, type)
       with qps 1/300 and burst 25; a refused event is skipped (never written, never retried).
    The sink always succeeds here (each write is what the apiserver then holds).
    """

    def __init__(
        self,
        burst: int = 25,
        qps: float = 1 / 300,
        max_events: int = 10,
        max_interval: float = 600.0,
    ) -> None:
        self.burst, self.qps = burst, qps
        self.max_events, self.max_interval = max_events, max_interval
        self._aggregates: dict[tuple[str, ...], tuple[set[str], float]] = {}
        self._observed: dict[tuple[str, ...], tuple[int, str]] = {}
        self._limiters: dict[tuple[str, ...], list[float]] = {}
        self._names = 0
        self.result = ModelResult()

    def record(self, now: float, obj: str, type_: str, reason: str, message: str) -> None:
        result = self.result
        # 1. EventAggregate
        aggregate_key = (obj, type_, reason)
        local_keys, last = self._aggregates.get(aggregate_key, (set(), float("-inf")))
        if now - last > self.max_interval:
            local_keys = set()
        local_keys.add(message)
        self._aggregates[aggregate_key] = (local_keys, now)
        aggregated = len(local_keys) >= self.max_events
        if aggregated:
            local_keys.pop()  # PopAny
            key: tuple[str, ...] = aggregate_key
            message = AGGREGATE_PREFIX + message
            result.aggregated += 1
        else:
            key = (obj, type_, reason, message)
        # 2. eventObserve
        seen = self._observed.get(key)
        if seen is None:
            self._names += 1
            count, name, verb = 1, f"event-{self._names}", "create"
        else:
            count, name, verb = seen[0] + 1, seen[1], "patch"
        self._observed[key] = (count, name)
        # 3. the spam filter: golang.org/x/time/rate's Limiter.AllowN(now, 1); a new limiter's
        # zero `last` makes its first call see a full bucket.
        limiter = self._limiters.setdefault((obj, type_), [float(self.burst), float("-inf")])
        tokens, stamp = limiter
        tokens = min(float(self.burst), tokens + max(0.0, now - stamp) * self.qps)
        if tokens < 1:
            result.suppressed += 1  # AllowN changes nothing when it refuses
            return
        limiter[:] = [tokens - 1, now]
        if verb == "create":
            result.creates += 1
        else:
            result.patches += 1
        result.aggregated_written += aggregated
        result.stored[name] = (message, count)


def client_go_allowance(flood: Flood) -> ModelResult:
    model = ClientGoModel()
    for when, message in flood.events:
        model.record(when, OBJECT, "Normal", REASON, message)
    return model.result


# -- the cluster -------------------------------------------------------------------------------


_LABEL = re.compile(r'(\w+)="([^"]*)"')


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` (a Prometheus text exposition) matching `labels`."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        sample_name, _, rest = head.partition("{")
        found = dict(_LABEL.findall(rest))
        if sample_name == name and labels.items() <= found.items():
            total += float(value)
    return total


@dataclass
class Outcome:
    """One replay: what the apiserver and the sidecar counted, and how long it took."""

    wall: float
    cpu: float
    counts: dict[str, Any]


def replay_once(
    api: client.ApiClient, kubeconfig: str, work: Path, *, variant: str, lines: int, run: int
) -> tuple[Outcome, ModelResult, Flood]:
    core = client.CoreV1Api(api)
    namespace = f"flood-{variant[:8]}-{run}-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    live = core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name=OBJECT), data={"phase": "Ready"}),
    )
    flood = make_flood(lines, namespace, VARIANTS[variant])
    log, rules = work / f"{namespace}.log", work / f"{variant}.rules.yaml"
    log.write_text(flood.text)
    rules.write_text(RULES.format(component=COMPONENT, reason=REASON, message=VARIANTS[variant]))
    expected = client_go_allowance(flood)

    before = event_requests(api)
    run_ = run_measured(
        [
            str(SIDECAR),
            "replay",
            str(log),
            "--rules",
            str(rules),
            "--kubeconfig",
            kubeconfig,
            "--host",
            HOST,
            "--metrics",
            "-o",
            "none",
            "--summary",
            "json",
        ]
    )
    after = event_requests(api)
    log.unlink()
    summary = json.loads(run_.stderr.decode().strip().splitlines()[-1])
    text = run_.stdout.decode()
    server = after - before
    stored = core.list_namespaced_event(namespace).items
    core.delete_namespace(namespace)

    emitted_create = metric(text, "event_sidecar_events_emitted_total", write="create")
    emitted_patch = metric(text, "event_sidecar_events_emitted_total", write="patch")
    dropped = metric(text, "event_sidecar_events_dropped_total")
    counts: dict[str, Any] = {
        "produced": summary["events"],
        "server_post": server["POST 201"],
        "server_patch": server["PATCH 200"],
        "server_other": sum(n for key, n in server.items() if key not in ("POST 201", "PATCH 200")),
        "stored_events": len(stored),
        "stored": sorted((e.message, e.count) for e in stored),
        "stored_uids": {e.involved_object.uid for e in stored},
        "live_uid": live.metadata.uid if live.metadata else None,
        "emitted_create": int(emitted_create),
        "emitted_patch": int(emitted_patch),
        "dropped_spam": int(
            metric(text, "event_sidecar_events_dropped_total", cause="spam_filter")
        ),
        "dropped": int(dropped),
        "aggregated": int(metric(text, "event_sidecar_events_aggregated_total")),
        "api_requests": int(metric(text, "event_sidecar_api_request_duration_seconds_count")),
        "summary": summary,
    }
    return Outcome(run_.wall, run_.cpu, counts), expected, flood


def check(variant: str, outcome: Outcome, expected: ModelResult, flood: Flood) -> list[str]:
    """Every way ours can differ from client-go or from itself; empty when all agree."""
    c = outcome.counts
    problems = []

    def same(what: str, ours: object, theirs: object) -> None:
        if ours != theirs:
            problems.append(f"{variant}: {what}: ours {ours} != {theirs}")

    same("Events the rules produced (replay's summary)", c["produced"], len(flood.events))
    same("creates seen by the apiserver vs client-go's", c["server_post"], expected.creates)
    same("patches seen by the apiserver vs client-go's", c["server_patch"], expected.patches)
    same("other answers to events requests", c["server_other"], 0)
    same(
        "Events stored (message, count) vs client-go's",
        c["stored"],
        sorted(expected.stored.values()),
    )
    same("involved uid of the stored Events", c["stored_uids"], {c["live_uid"]})
    same(
        "emitted_total{write=create} vs the apiserver's POSTs",
        c["emitted_create"],
        c["server_post"],
    )
    same(
        "emitted_total{write=patch} vs the apiserver's PATCHes",
        c["emitted_patch"],
        c["server_patch"],
    )
    same(
        "dropped_total{cause=spam_filter} vs client-go's skips",
        c["dropped_spam"],
        expected.suppressed,
    )
    same("dropped_total (all causes) vs spam_filter", c["dropped"], c["dropped_spam"])
    same(
        "emitted + dropped vs the Events produced",
        c["emitted_create"] + c["emitted_patch"] + c["dropped"],
        c["produced"],
    )
    same(
        "aggregated_total vs client-go's written combined",
        c["aggregated"],
        expected.aggregated_written,
    )
    writes = c["server_post"] + c["server_patch"]
    if writes > expected.writes:
        problems.append(f"{variant}: {writes} writes, more than client-go's {expected.writes}")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument(
        "--kubeconfig", help="use this running cluster instead of starting a control plane"
    )
    parser.add_argument("--work-dir", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--smoke", action="store_true", help="2,000 lines, one run, no report")
    args = parser.parse_args()
    if args.smoke:
        args.lines, args.runs = 2000, 1
    args.work_dir.mkdir(parents=True, exist_ok=True)

    outcomes: dict[str, list[Outcome]] = {variant: [] for variant in VARIANTS}
    models: dict[str, ModelResult] = {}
    problems: list[str] = []
    with cluster(args.kubeconfig) as (kubeconfig, origin):
        api = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        try:
            server_version = json.loads(raw_get(api, "/version"))["gitVersion"]
            for run in range(args.runs):
                for variant in VARIANTS:
                    outcome, expected, flood = replay_once(
                        api, kubeconfig, args.work_dir, variant=variant, lines=args.lines, run=run
                    )
                    problems += check(variant, outcome, expected, flood)
                    previous = outcomes[variant][0].counts if outcomes[variant] else None
                    if previous is not None:
                        for key in ("server_post", "server_patch", "stored", "dropped_spam"):
                            if outcome.counts[key] != previous[key]:
                                problems.append(f"{variant}: {key} differs between runs")
                    outcomes[variant].append(outcome)
                    models[variant] = expected
                    c = outcome.counts
                    print(
                        f"run {run + 1}/{args.runs} {variant}: {c['server_post']} creates + "
                        f"{c['server_patch']} patches (client-go: {expected.creates} + "
                        f"{expected.patches}), {c['dropped_spam']} dropped, "
                        f"{outcome.wall:.1f} s",
                        file=sys.stderr,
                    )
        finally:
            api.close()
    if problems:
        raise SystemExit("flood benchmark failed its checks:\n  " + "\n  ".join(problems))
    if args.smoke:
        parts = [
            f"{v} {o[0].counts['server_post'] + o[0].counts['server_patch']} writes "
            f"(client-go {models[v].writes}), {o[0].counts['dropped_spam']} dropped"
            for v, o in outcomes.items()
        ]
        print(f"smoke ok: {args.lines} lines; " + "; ".join(parts))
        return
    body = report(args, outcomes, models, origin, server_version)
    write_section("flood", body)
    print(body)


def report(
    args: argparse.Namespace,
    outcomes: dict[str, list[Outcome]],
    models: dict[str, ModelResult],
    origin: str,
    server_version: str,
) -> str:
    def writes_row(variant: str) -> str:
        c, m = outcomes[variant][0].counts, models[variant]
        ours = c["server_post"] + c["server_patch"]
        counts = ", ".join(map(str, sorted((count for _, count in c["stored"]), reverse=True)))
        emitted = c["emitted_create"] + c["emitted_patch"]
        return (
            f"| {variant} | {c['produced']:,} | **{ours}** ({c['server_post']} POST + "
            f"{c['server_patch']} PATCH) | {m.writes} ({m.creates} + {m.patches}) "
            f"| {ours / m.writes:.2f}x | {c['stored_events']} (counts {counts}) "
            f"| {emitted} + {c['dropped_spam']:,} = {emitted + c['dropped']:,} "
            f"| {c['aggregated']} ({m.aggregated_written}) |"
        )

    def cost_row(variant: str) -> str:
        runs = outcomes[variant]
        wall = spread([o.wall for o in runs])
        rate = spread([args.lines / o.cpu for o in runs])
        return (
            f"| {variant} | {runs[0].counts['api_requests']} "
            f"| {wall[0]:.2f} ({wall[1]:.2f}-{wall[2]:.2f}) "
            f"| {rate[0]:,.0f} ({rate[1]:,.0f}-{rate[2]:,.0f}) |"
        )

    two, distinct = models["two-messages"], models["distinct-messages"]
    first = " and ".join(
        f"`{m}` count {n}" for m, n in outcomes["two-messages"][0].counts["stored"]
    )
    combined_count = max(
        count for message, count in distinct.stored.values() if message.startswith(AGGREGATE_PREFIX)
    )
    return f"""
## API load under a flood: {args.lines:,} transitions of one object in one minute

`.venv/bin/python -m bench.flood --runs {args.runs}` on {today()}; {machine()};
{origin}, serving {server_version}; event-sidecar {_version()}, kubernetes client
{kubernetes.__version__}.

The log: a controller flapping one ConfigMap's phase between Ready and Degraded on **every** line
(100 % of the lines are transitions), {args.lines:,} controller-runtime JSON lines 0.6 ms apart in
the log's time (all within 60 s), replayed with `event-sidecar replay LOG --rules R --kubeconfig K
--metrics -o none --summary json` into a real kube-apiserver, a fresh namespace per run; the
replay's clock is the log's time. The rule (`transition: first: skip`) produces
{outcomes["two-messages"][0].counts["produced"]:,} Events; its message is
`phase {{from}} -> {{to}}` (two distinct messages) or, in the second variant, also carries the
generation (every message distinct). Writes are counted by the apiserver itself
(`apiserver_request_total{{resource="events"}}`, before and after) and the Events read back; the
sidecar's own metrics must agree. Counts were identical in all {args.runs} runs; times are the
median of {args.runs} runs (min-max).

{WRITES_HEADER}
{writes_row("two-messages")}
{writes_row("distinct-messages")}

| variant | API requests in all | replay wall time (s) | lines/s of CPU time |
|---|---|---|---|
{cost_row("two-messages")}
{cost_row("distinct-messages")}

How client-go's allowance is computed (`ClientGoModel` in bench/flood.py, an independent model of
`tools/record/events_cache.go`, not sidecar.core.correlate): every Event of one object and type
takes a token from one bucket that starts full with 25 and earns 1 per 300 s. In a 60 s window that
is 25 + 60/300 = 25.2 tokens, so **25 writes** and {two.suppressed:,} Events skipped (client-go
skips silently; we count each in `events_dropped_total{{cause="spam_filter"}}`). With two messages
the aggregator never fires (it needs 10 distinct messages within 600 s), so the 25 writes are
{two.creates} creates and {two.patches} PATCHes raising the counts ({first}). With a distinct
message each time, the first 9 Events are created as themselves, the 10th distinct message turns
into a new "(combined from similar events): ..." Event, and the remaining admitted Events PATCH that
one: {distinct.creates} creates + {distinct.patches} patches, the combined Event ending with count
{combined_count} (the Events after the 25th are skipped, though their count still rises in memory,
as in client-go). `aggregated_total` counts the combined Events written (client-go aggregated
{distinct.aggregated:,} in all, most then skipped). "API requests in all" is every request the
sidecar made (its `api_request_duration_seconds` counts: discovery, the ConfigMap's look-up, the
writes). A recorder without correlation would have made
{outcomes["two-messages"][0].counts["produced"]:,} writes.

Target: no more writes than client-go (about 30) and every suppressed Event counted:
**met** for both variants (all checks above passed in every run).
"""


def _version() -> str:
    done = run_measured([str(SIDECAR), "--version"])
    return done.stdout.decode().split()[-1]


if __name__ == "__main__":
    main()
