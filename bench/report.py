"""Shared helpers for the benchmarks: timing child processes and writing BENCHMARKS.md.

Each benchmark owns one section of BENCHMARKS.md, between `<!-- bench:NAME -->` and
`<!-- /bench:NAME -->`, and rewrites only that section, so the file can be refreshed one
benchmark at a time.
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "BENCHMARKS.md"
#: GNU time (Debian's `time` package), which reports a command's own peak RSS and CPU time.
GNU_TIME = "/usr/bin/time"


@dataclass(frozen=True)
class Run:
    wall: float
    cpu: float
    max_rss_kib: int
    stdout: bytes
    stderr: bytes


def run_measured(argv: list[str]) -> Run:
    """Run a command to completion: wall time, CPU time (user + system) and peak RSS.

    CPU and peak RSS come from GNU time wrapped around the command: the child's own rusage as
    seen by this process would count this (large) Python process's memory, which a forked child
    inherits as its high-water mark before it execs.
    """
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r") as usage,
    ):
        start = time.perf_counter()
        process = subprocess.run(
            [GNU_TIME, "-f", "%M %U %S", "-o", usage.name, *argv],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            check=False,
        )
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
        fields = usage.read().split()
    if process.returncode != 0:
        raise RuntimeError(f"{argv} failed ({process.returncode}): {stderr.decode()[-2000:]}")
    max_rss_kib, user, system = int(fields[-3]), float(fields[-2]), float(fields[-1])
    return Run(wall, user + system, max_rss_kib, stdout, stderr)


def spread(values: list[float]) -> tuple[float, float, float]:
    """(median, min, max)."""
    return statistics.median(values), min(values), max(values)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    system = f"{platform.system()} {platform.release()}"
    return (
        f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB, {system}, "
        f"Python {platform.python_version()}"
    )


def write_section(name: str, body: str) -> None:
    """Replace (or append) this benchmark's section of BENCHMARKS.md."""
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else "# Benchmarks\n"
    block = f"{begin}\n{body.strip()}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    BENCHMARKS.write_text(text)


def load_average() -> str:
    """The 1, 5 and 15 minute load averages from /proc/loadavg (the machine may be shared)."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) a running process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


@dataclass(frozen=True)
class Cluster:
    kubeconfig: str
    #: How the cluster came to be, for the report.
    origin: str
    #: {"etcd": pid, "kube-apiserver": pid} of a control plane started here (for their CPU
    #: time); empty for an existing cluster.
    pids: dict[str, int]


@contextlib.contextmanager
def control_plane(kubeconfig: str | None) -> Iterator[Cluster]:
    """The cluster given by `kubeconfig`, or a control plane started here (etcd +
    kube-apiserver built from tools/, stopped by pid when the benchmark ends)."""
    if kubeconfig:
        yield Cluster(kubeconfig, "an existing cluster (--kubeconfig)", {})
        return
    from tests.controlplane import ControlPlane, kubernetes_version  # noqa: PLC0415

    plane = ControlPlane().start()
    try:
        origin = (
            f"kube-apiserver {kubernetes_version()} (a control plane the benchmark started: "
            f"etcd + kube-apiserver, ready in {plane.startup_seconds:.1f} s)"
        )
        yield Cluster(str(plane.kubeconfig), origin, plane.pids)
    finally:
        plane.stop()


@contextlib.contextmanager
def cluster(kubeconfig: str | None) -> Iterator[tuple[str, str]]:
    """(kubeconfig, how the cluster came to be): see `control_plane`."""
    with control_plane(kubeconfig) as started:
        yield started.kubeconfig, started.origin
