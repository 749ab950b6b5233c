"""Seeded generator of a controller log mixing every format, with a truth file of exact counts.

    python -m bench.generate --lines 1000000 --seed 1 --out bench/out/mixed-1m.log

writes the log and `<out>.truth.json`: the counts `replay` with `bench/rules.yaml` must report
exactly (lines, over-long lines, undecodable lines, matches and Events per rule). The mix is
mostly controller-runtime JSON, some klog text and logfmt, a little garbage and a few over-long
lines, about 5 % of lines matching a rule.

`--transitions 0.3 --objects 300 --changes 0.5` makes the "flapping" log instead: 30 % of the
lines are quota transitions on 300 objects, half of them changing the state, so most Events are
dropped by the spam filter (25 per object, then one per 300 s of the log's time);
`--transitions 0.05` with the same objects and changes, bench/throughput.py's `transitions-5`.
The defaults (0.04, 1,000, 0.1) give the mixed log above, byte for byte as before.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

#: Lines per million of each kind; the rest is controller-runtime JSON that no rule matches.
OVER_LONG_PER_MILLION = 5
GARBAGE_PER_MILLION = 20_000
MAX_LINE_BYTES = 100 * 1024
OBJECTS = 1000
#: Share of lines that are quota transitions, and the chance that one changes the state.
TRANSITIONS = 0.04
CHANGES = 0.1


@dataclass
class Truth:
    lines: int = 0
    too_long: int = 0
    #: Lines that hold a rule's literal but are no log line (the others are skipped unseen).
    undecodable: int = 0
    matched: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    state: dict[tuple[str, ...], str] = field(default_factory=dict)

    def transition(self, rule: str, key: tuple[str, ...], state: str) -> None:
        """Mirror `first: skip` transitions: an Event only when a known state changes."""
        self.matched[rule] += 1
        previous = self.state.get((rule, *key))
        self.state[(rule, *key)] = state
        if previous is not None and previous != state:
            self.events[rule] += 1

    def event(self, rule: str) -> None:
        self.matched[rule] += 1
        self.events[rule] += 1


def configure(*, objects: int, transitions: float, changes: float) -> None:
    """Set the log's shape (the module's constants) before `generate`."""
    global OBJECTS, TRANSITIONS, CHANGES
    OBJECTS, TRANSITIONS, CHANGES = objects, transitions, changes


def _json(obj: dict[str, object]) -> str:
    """Compact, non-ASCII kept: how Go's encoders (zap, klog, slog) write a line."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def generate(lines: int, seed: int, out: Path) -> Truth:
    rng = random.Random(seed)
    truth = Truth()
    now = datetime(2026, 11, 1, tzinfo=UTC)
    hard = {
        (f"team-{i}", r): rng.choice(("1", "2", "4"))
        for i in range(OBJECTS)
        for r in ("cpu", "memory")
    }
    pods = {f"pod-{i}": "Running" for i in range(OBJECTS)}
    with out.open("w", encoding="utf-8") as stream:
        for _ in range(lines):
            now += timedelta(microseconds=rng.randint(100, 2000))
            stream.write(_line(rng, now, truth, hard, pods))
            stream.write("\n")
            truth.lines += 1
    return truth


def _line(
    rng: random.Random,
    now: datetime,
    truth: Truth,
    hard: dict[tuple[str, str], str],
    pods: dict[str, str],
) -> str:
    roll = rng.randrange(1_000_000)
    ts = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if roll < OVER_LONG_PER_MILLION:
        truth.too_long += 1
        # An over-long line that would otherwise match: it must be skipped, not decoded.
        return _json(
            {"level": "info", "ts": ts, "msg": "Quota evaluated", "blob": "x" * MAX_LINE_BYTES}
        )
    if roll < OVER_LONG_PER_MILLION + GARBAGE_PER_MILLION:
        if rng.random() < 0.5:
            # A line cut short mid-write: it holds a rule's literal, so it is decoded and fails.
            truth.undecodable += 1
            return f'{{"level":"info","ts":"{ts}","msg":"Quota evaluated","namespace":"te'
        # Noise no rule could match; the pre-filter skips it without decoding.
        return "".join(rng.choice("abcdefghij []:;'") for _ in range(rng.randint(5, 80)))
    name = f"team-{rng.randrange(OBJECTS)}"
    base = {
        "controller": "resourcequotaautoscaler",
        "controllerGroup": "autoscaling.example.com",
        "controllerKind": "ResourceQuotaAutoscaler",
        "ResourceQuotaAutoscaler": {"name": name, "namespace": name},
        "namespace": name,
        "name": name,
        "reconcileID": f"{rng.getrandbits(128):032x}",
    }
    kind = rng.random() - TRANSITIONS  # the thresholds below are the mixed log's, shifted
    if kind < 0.0:
        resource = rng.choice(("cpu", "memory"))
        if rng.random() < CHANGES:
            hard[(name, resource)] = rng.choice(("1", "2", "4", "8"))
        truth.transition("quota-changed", (name, resource), hard[(name, resource)])
        return _json(
            {
                "level": "info",
                "ts": ts,
                "logger": "controller",
                "msg": "Quota evaluated",
                **base,
                "resource": resource,
                "hard": hard[(name, resource)],
            }
        )
    if kind < 0.005:
        truth.event("reconcile-error")
        return _json(
            {
                "level": "error",
                "ts": ts,
                "msg": "Reconciler error",
                **base,
                "error": f'resourcequotas "{name}" is forbidden: exceeded quota',
            }
        )
    if kind < 0.01:
        pod = f"pod-{rng.randrange(OBJECTS)}"
        if rng.random() < 0.2:
            pods[pod] = rng.choice(("Running", "Pending", "Failed"))
        truth.transition("pod-status", (pod,), pods[pod])
        stamp = now.strftime("%m%d %H:%M:%S.%f")
        return (
            f'I{stamp}       1 status_manager.go:874] "Pod status updated" '
            f'pod="apps/{pod}" status="{pods[pod]}"'
        )
    if kind < 0.05:
        stamp = now.strftime("%m%d %H:%M:%S.%f")
        return (
            f'I{stamp}       1 reflector.go:359] "Listing and watching" type="*v1.ResourceQuota" '
            'reflector="pkg/mod/k8s.io/client-go/tools/cache/reflector.go:229"'
        )
    if kind < 0.09:
        objects = rng.randrange(1000)
        return f'time="{ts}" level=info msg="backup finished" bucket=backups objects={objects}'
    msg = rng.choice(
        (
            "Reconciling ResourceQuotaAutoscaler",
            "Reconcile successful",
            "Observed status",
            "Updated ResourceQuota",
        )
    )
    return _json({"level": "info", "ts": ts, "logger": "controller", "msg": msg, **base})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--objects", type=int, default=OBJECTS, help="distinct objects")
    parser.add_argument(
        "--transitions", type=float, default=TRANSITIONS, help="share of quota transition lines"
    )
    parser.add_argument(
        "--changes", type=float, default=CHANGES, help="chance that a transition changes state"
    )
    args = parser.parse_args()
    configure(objects=args.objects, transitions=args.transitions, changes=args.changes)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    truth = generate(args.lines, args.seed, args.out)
    summary = {
        "lines": truth.lines,
        "too_long": truth.too_long,
        "undecodable": truth.undecodable,
        "matched": dict(sorted(truth.matched.items())),
        "events": dict(sorted(truth.events.items())),
    }
    Path(f"{args.out}.truth.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
