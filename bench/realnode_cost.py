"""The injected sidecar's memory and CPU in its own cgroup, in a real pod, under load.

    python -m bench.realnode_cost                      # idle, 10, 100, 1,000 lines/s, 60 s each
    python -m bench.realnode_cost --rates 100 --duration 20

Needs root and what the real-node tests need (tests/realnode.py: the node's binaries, containerd,
runc, the CNI plugins; tests/test_real_node.py: the image built from the Dockerfile on the
stand-in Debian base). Starts the control plane and one real node, then for each load a fresh
injected example (`event-sidecar inject`, as tests/test_real_node.py applies it): the controller
is the stand-in controller's image printing the example log (stamped now) to stderr at a steady
rate (tests/realnode_pods.py), over and over; the sidecar reads it through kube-apiserver ->
kubelet -> the CRI log file, as injected (its resources are the injected ones, which equal the
chart's), and writes Events to the same kube-apiserver.

Per load, after `--warmup` seconds, for `--duration` seconds, from the sidecar container's cgroup
(v1 here: memory and cpuacct): CPU (cpuacct.usage over the window, in millicores), memory now
(`memory.usage_in_bytes`, page cache included) and its anonymous part (`total_rss` of
`memory.stat`), sampled every second, and the peak over the window (`max_usage_in_bytes`, reset
at its start). "idle" is the example printed once, then nothing: the sidecar following a quiet
log. Events written and dropped (`events_dropped_total`: client-go's spam filter, mostly, whose
buckets a log repeated this fast empties) over the window. Checks that the sidecar kept up
(lines read over the window within 5 % of the rate) and was not restarted. Prints a Markdown
table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sidecar.inject import SIDECAR_NAME
from tests.realnode_pods import apply_example
from tests.test_cluster_e2e import remove_example
from tests.test_real_node import (
    Cluster,
    container_pid,
    metric,
    metrics_url,
    running_cluster,
    statuses,
    the_pod,
    wait_running,
)

MIB = 2**20


@dataclass
class Figures:
    load: str
    cpu_millicores: float
    memory_median_mib: float
    rss_median_mib: float
    memory_peak_mib: float
    lines_per_second: float
    events_written: float
    events_dropped: float
    request: str
    limit: str


def cgroup_dirs(pid: int) -> tuple[Path, Path]:
    """The memory and cpuacct cgroup (v1) folders holding ``pid``."""
    paths = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(","):
            paths[controller] = path.lstrip("/")
    return (
        Path("/sys/fs/cgroup/memory") / paths["memory"],
        Path("/sys/fs/cgroup/cpuacct") / paths["cpuacct"],
    )


def anonymous(memory: Path) -> int:
    for line in (memory / "memory.stat").read_text().splitlines():
        key, _, value = line.partition(" ")
        if key == "total_rss":
            return int(value)
    raise RuntimeError(f"no total_rss in {memory / 'memory.stat'}")


def measure(cluster: Cluster, rate: float, warmup: float, duration: float) -> Figures:
    cp = cluster.cp
    remove_example(cp)
    if rate:
        repeat = int(rate * (warmup + duration + 120) / 629) + 1
        apply_example(cp, rate=rate, repeat=repeat)
    else:
        apply_example(cp)
    pod = wait_running(cluster, timeout=120)
    url = metrics_url(pod)
    time.sleep(warmup)
    pod = the_pod(cp)
    memory, cpu = cgroup_dirs(container_pid(cluster.node, pod, SIDECAR_NAME))
    (memory / "memory.max_usage_in_bytes").write_text("0\n")  # the peak of this window
    cpu_before = int((cpu / "cpuacct.usage").read_text())
    read_before = metric(url, "event_sidecar_lines_read_total")
    events_before = metric(url, "event_sidecar_events_emitted_total")
    dropped_before = metric(url, "event_sidecar_events_dropped_total")
    began = time.monotonic()
    usage, rss = [], []
    while time.monotonic() - began < duration:
        usage.append(int((memory / "memory.usage_in_bytes").read_text()))
        rss.append(anonymous(memory))
        time.sleep(1)
    seconds = time.monotonic() - began
    cpu_used = (int((cpu / "cpuacct.usage").read_text()) - cpu_before) / 1e9
    lines = (metric(url, "event_sidecar_lines_read_total") - read_before) / seconds
    events = metric(url, "event_sidecar_events_emitted_total") - events_before
    dropped = metric(url, "event_sidecar_events_dropped_total") - dropped_before
    peak = int((memory / "memory.max_usage_in_bytes").read_text())
    status = statuses(the_pod(cp))[SIDECAR_NAME]
    if status.get("restartCount", 0):
        raise SystemExit(f"the sidecar was restarted at {rate} lines/s: {status}")
    if rate and abs(lines - rate) > 0.05 * rate:
        raise SystemExit(f"the sidecar read {lines:.0f} lines/s of {rate:.0f}: it fell behind")
    [sidecar] = [c for c in pod["spec"]["initContainers"] if c["name"] == SIDECAR_NAME]
    resources = sidecar["resources"]
    return Figures(
        load=f"{rate:,.0f} lines/s" if rate else "idle (example printed once)",
        cpu_millicores=1000 * cpu_used / seconds,
        memory_median_mib=statistics.median(usage) / MIB,
        rss_median_mib=statistics.median(rss) / MIB,
        memory_peak_mib=peak / MIB,
        lines_per_second=lines,
        events_written=events,
        events_dropped=dropped,
        request=f"{resources['requests']['cpu']}, {resources['requests']['memory']}",
        limit=f"{resources['limits'].get('cpu', 'no CPU limit')}, {resources['limits']['memory']}",
    )


def table(results: list[Figures], args: argparse.Namespace) -> str:
    rows = [
        "| load | CPU | memory (median) | of which anonymous | memory peak | lines read/s "
        "| Events written (dropped) | injected requests / limits |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rows.append(
            f"| {r.load} | {r.cpu_millicores:.0f}m | {r.memory_median_mib:.1f} MiB "
            f"| {r.rss_median_mib:.1f} MiB | {r.memory_peak_mib:.1f} MiB "
            f"| {r.lines_per_second:,.0f} | {r.events_written:,.0f} ({r.events_dropped:,.0f}) "
            f"| {r.request} / {r.limit} |"
        )
    cores = os.cpu_count()
    return "\n".join(
        [
            f"`python -m bench.realnode_cost --duration {args.duration:g} --warmup "
            f"{args.warmup:g}` on {datetime.now(UTC):%Y-%m-%d}, {platform.machine()}, "
            f"{cores} cores (shared), Linux {platform.release()}; one run per load.",
            "",
            *rows,
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[0, 10, 100, 1000])
    parser.add_argument("--warmup", type=float, default=15.0)
    parser.add_argument("--duration", type=float, default=60.0)
    args = parser.parse_args()
    results = []
    with running_cluster() as cluster:
        for rate in args.rates:
            figures = measure(cluster, rate, args.warmup, args.duration)
            print(json.dumps(figures.__dict__), file=sys.stderr, flush=True)
            results.append(figures)
        remove_example(cluster.cp)
    print(table(results, args))


if __name__ == "__main__":
    main()
