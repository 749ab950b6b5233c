"""Start-up and the cost of imports: `replay` on an empty file, `check`, and RSS by import.

    .venv/bin/python -m bench.startup --runs 10 [--baseline DIR]

Times `event-sidecar replay EMPTY --rules bench/rules.yaml -o none` and `event-sidecar check
bench/rules.yaml` (CPU time, wall time and peak RSS from GNU time; median and min of the runs),
beside the bare interpreter; summarises `python -X importtime` of that replay by top-level
package; and measures the resident set `run` adds by import, step by step in the order it
loads them (a fresh interpreter, VmRSS after each import), plus what dropping pydantic from
`sys.modules` after the rules are loaded gives back. `--baseline DIR` times a second copy of the
package too (DIR holds a `sidecar/` folder, e.g. from `git archive COMMIT sidecar`), alternating
with this one, for a before/after in one run. Writes its section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

from bench.harness import compile_bytecode, sidecar_run
from bench.report import ROOT, machine, run_measured, today, write_section

BENCH = ROOT / "bench"
RULES = BENCH / "rules.yaml"
#: Seconds of CPU `run` may take to be ready (issue 24).
READY_TARGET = 0.25
#: What `run` with the API sink loads, in order; each step's extra resident set is reported.
RUN_STEPS = (
    ("the interpreter", ""),
    (
        "command line (argparse, settings, correlation, Events; with the standard library's "
        "logging, inspect, uuid and hashlib, whose OpenSSL is most of it)",
        "sidecar.cli",
    ),
    ("PyYAML", "yaml"),
    ("pydantic (BaseModel, pydantic-core)", "pydantic.main"),
    ("the rules' models and compiler (sidecar.core.rules)", "sidecar.core.rules"),
    (
        "prometheus_client (its exposition imports the standard library's HTTP server and "
        "client, and ssl)",
        "prometheus_client",
    ),
    ("the metrics (sidecar.runtime.metrics)", "sidecar.runtime.metrics"),
    ("asyncio", "asyncio"),
    (
        "the daemon (sources, consumer, poster, status server): all of `--dry-run`",
        "sidecar.daemon.service",
    ),
    ("the Kubernetes client (with requests, urllib3)", "kubernetes"),
    ("the Kubernetes sink (sidecar.kube)", "sidecar.kube"),
    ("the writes (aiohttp's client: sidecar.kube.sender)", "sidecar.kube.sender"),
    ("(not loaded by `run`: aiohttp.web, which the webhook uses)", "aiohttp.web"),
    ("(loaded by the first `regex:` rule only: google-re2)", "re2"),
)
_RSS_PROBE = """
import gc, importlib, sys
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
for module in sys.argv[1:]:
    if module:
        importlib.import_module(module)
    gc.collect()
    print(rss())
from sidecar.core.rules import load_rules
rules = load_rules({rules!r})
gc.collect()
loaded = rss()
for name in list(sys.modules):
    if name.split(".")[0] in ("pydantic", "pydantic_core", "annotated_types"):
        del sys.modules[name]
gc.collect()
print(loaded, rss())
"""


def python_of(tree: str | None) -> tuple[list[str], dict[str, str]]:
    """The command and environment that run `sidecar` from `tree` (None: this checkout)."""
    env = dict(os.environ)
    if tree:
        env["PYTHONPATH"] = tree
    return [sys.executable, "-m", "sidecar"], env


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        run = run_measured(argv)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return run.cpu, run.wall, run.max_rss_kib


def importtime(empty: Path) -> list[tuple[str, float]]:
    """Self import time (ms) summed by top-level package, for `replay EMPTY`, largest first."""
    done = subprocess.run(
        [
            *(sys.executable, "-X", "importtime", "-m", "sidecar", "replay", str(empty)),
            *("--rules", str(RULES), "-o", "none", "--summary", "json"),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    by_package: Counter[str] = Counter()
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if match:
            by_package[match[2].split(".")[0]] += int(match[1])
    return [(name, us / 1000) for name, us in by_package.most_common()]


def rss_steps() -> tuple[list[int], int, int]:
    """VmRSS (KiB) after each of RUN_STEPS; after loading rules; after dropping pydantic."""
    probe = _RSS_PROBE.replace("{rules!r}", repr(str(RULES)))
    done = subprocess.run(
        [sys.executable, "-c", probe, *(module for _, module in RUN_STEPS)],
        capture_output=True,
        text=True,
        check=True,
        cwd=tempfile.gettempdir(),
    )
    lines = done.stdout.split("\n")
    steps = [int(line) for line in lines[: len(RUN_STEPS)]]
    loaded, dropped = (int(v) for v in lines[len(RUN_STEPS)].split())
    return steps, loaded, dropped


def run_to_ready(runs: int) -> list[tuple[float, float, int]]:
    """(CPU s, wall s, VmRSS KiB) of `run --dry-run` on an empty file, from its start to its
    `/readyz` first answering 200, per run (the child's own CPU, from /proc)."""
    measured = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="startup-") as tmp:
            work = Path(tmp)
            log = work / "app.log"
            log.touch()
            options = ["--file", str(log), "--rules", str(RULES), "--dry-run"]
            began = time.monotonic()
            with sidecar_run(
                work, [*options, "--checkpoint", str(work / "cp.json")], host="startup-0"
            ) as child:
                ready = child.url.replace("/metrics", "/readyz")
                while True:
                    try:
                        with urllib.request.urlopen(ready, timeout=5) as answer:
                            if answer.status == 200:
                                break
                    except OSError:
                        pass
                    time.sleep(0.005)
                measured.append((child.cpu_seconds(), time.monotonic() - began, child.vm("VmRSS")))
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--baseline", help="a folder holding another copy of `sidecar/`")
    parser.add_argument(
        "--baseline-is",
        default="the package as it was before the commands imported their engines lazily and "
        "the daemon dropped aiohttp",
        help="what the baseline copy is, for the report",
    )
    parser.add_argument("--smoke", action="store_true", help="one run, no report")
    args = parser.parse_args()
    if args.smoke:
        args.runs = 1
    compile_bytecode()
    trees: dict[str, str | None] = {"this checkout": None}
    if args.baseline:
        trees = {"baseline": args.baseline, **trees}
    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    with tempfile.NamedTemporaryFile(suffix=".log") as empty:
        commands = {
            "python -c pass (the interpreter)": ["-c", "pass"],
            "replay EMPTY --rules bench/rules.yaml -o none": [
                "replay",
                empty.name,
                "--rules",
                str(RULES),
                "-o",
                "none",
            ],
            "check bench/rules.yaml": ["check", str(RULES)],
        }
        samples: dict[tuple[str, str], list[tuple[float, float, int]]] = {}
        for _ in range(args.runs):
            for tree_name, tree in trees.items():
                command, env = python_of(tree)
                for name, argv in commands.items():
                    full = [sys.executable, *argv] if argv[0] == "-c" else [*command, *argv]
                    samples.setdefault((name, tree_name), []).append(timed(full, env))
        packages = importtime(Path(empty.name))
    ready = run_to_ready(args.runs)
    steps, loaded, dropped = rss_steps()
    load_after = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    if args.smoke:
        print(
            f"smoke ok: {len(samples)} timings; run's imports {steps[-1] / 1024:.1f} MiB; "
            f"run ready after {ready[0][0]:.2f} s of CPU"
        )
        return
    rows = []
    for (name, tree_name), values in samples.items():
        if name.startswith("python -c") and tree_name != "this checkout":
            continue
        cpu = [v[0] for v in values]
        wall = [v[1] for v in values]
        rss = statistics.median(v[2] for v in values) / 1024
        who = name if len(trees) == 1 or name.startswith("python -c") else f"{name} ({tree_name})"
        rows.append(
            f"| {who} | {statistics.median(cpu):.2f} ({min(cpu):.2f}) | "
            f"{statistics.median(wall):.2f} ({min(wall):.2f}) | {rss:.1f} |"
        )
    total = sum(ms for _, ms in packages)
    top = ", ".join(f"{name} {ms:.0f}" for name, ms in packages[:10])
    step_rows = [
        f"| {label} | +{(after - before) / 1024:.1f} | {after / 1024:.1f} |"
        for (label, _), before, after in zip(RUN_STEPS[1:], steps[:-1], steps[1:], strict=True)
    ]
    baseline = (
        f" DIR held {args.baseline_is} (`git archive` of that commit), timed in the same run, "
        "alternating with this checkout."
        if args.baseline
        else ""
    )
    body = f"""
## Start-up and imports

`.venv/bin/python -m bench.startup --runs {args.runs}{" --baseline DIR" if args.baseline else ""}`
on {today()}; {machine()}. Load average {load_before} before, {load_after} after (a shared
machine: the minimum is the steadier figure).{baseline}

CPU time (user + system) and wall time in seconds, median (min) of {args.runs} runs; peak RSS
(median) from GNU time:

| command | CPU s | wall s | peak RSS (MiB) |
|---|---|---|---|
{chr(10).join(rows)}

`run --file EMPTY --rules bench/rules.yaml --dry-run --listen 127.0.0.1:0` from its start to
its `/readyz` first answering 200 (the child's CPU from /proc; bytecode compiled, as in the
image): CPU {statistics.median(r[0] for r in ready):.2f} s (min {min(r[0] for r in ready):.2f};
target under {READY_TARGET:g} s), wall {statistics.median(r[1] for r in ready):.2f} s, VmRSS
then {statistics.median(r[2] for r in ready) / 1024:.1f} MiB; median of {args.runs} runs.

`python -X importtime` of that replay, self time summed by top-level package (ms, with
importtime's own overhead; {total:.0f} ms in all): {top}.

What `run` (API sink) adds to the resident set, import by import (a fresh interpreter, VmRSS
after each step, MiB):

| step | + MiB | VmRSS |
|---|---|---|
| the interpreter | | {steps[0] / 1024:.1f} |
{chr(10).join(step_rows)}

The floor, and why it stops there. `--dry-run` needs everything above the Kubernetes client:
the interpreter, the standard library's share (argparse, logging, asyncio, and OpenSSL through
hashlib and ssl, which prometheus_client's exposition imports), PyYAML, and pydantic with the
rules' models (the validators pydantic-core builds for them are native memory, kept for the
hot reload). pydantic and the rules' models are the largest part that is ours to choose; they
stay (the rules files' checks and messages are built on them). google-re2 is loaded only by a
rule with a `regex:`. The API sink adds the official Kubernetes client, whose package imports
every generated API and model (about 10 MiB, and the client alone brings a bare interpreter to
about 42 MiB), used for the kubeconfig and in-cluster configuration and the first look-up of a
kind, and aiohttp's client for the writes: so the API sink's floor is the client's as long as it
is imported, and the 45 MiB target is below it.

Dropping pydantic from `sys.modules` after the rules are loaded (and a `gc.collect()`) changes
the resident set by {(dropped - loaded) / 1024:+.1f} MiB ({loaded / 1024:.1f} ->
{dropped / 1024:.1f}): its classes stay referenced and pydantic-core's validators are native
memory, so there is nothing to gain that way; and the Kubernetes client imports pydantic itself.
"""
    write_section("startup", body)
    print(body)


if __name__ == "__main__":
    main()
