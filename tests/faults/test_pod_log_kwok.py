"""The pod log source against the real thing: kube-apiserver proxying to kwok, which serves the
container's log with the kubelet's own reader (`k8s.io/cri-client/pkg/logs`) over a CRI-format
file this test writes, as a container runtime would.

What is tried: timestamps that go backwards (stdout and stderr interleaved), live and across a
resume; a Go panic written in two parts, so that it crosses HTTP chunks; tracebacks, whose lines
the reader streams one at a time, so that a chunk ends between a line and its stack; the log file
truncated under the followed stream (the reader waits at its old offset: the stream stalls).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from sidecar.core.settings import PodLogSettings
from sidecar.kube import connect_pod_logs
from sidecar.model import PodLogPosition
from sidecar.runtime.metrics import Metrics
from sidecar.sources import Block
from sidecar.sources.podlog import PodLogSource
from tests.controlplane import KWOK_NODE, ControlPlane
from tests.test_sources_podlog import Follower

pytestmark = pytest.mark.controlplane

NAMESPACE, CONTAINER = "podlog-faults", "manager"
WAIT = 20.0
PANIC = [
    "panic: runtime error: invalid memory address or nil pointer dereference",
    "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4a1b2c]",
    "",
    "goroutine 1 [running]:",
    "main.reconcile(0x0)",
    "\t/src/controller.go:42 +0x1d",
]


@dataclass
class Kwok:
    cp: ControlPlane
    logs: Path


@pytest.fixture(scope="module")
def kwok(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kwok]:
    logs = tmp_path_factory.mktemp("kwok-logs")
    cluster_logs: dict[str, Any] = {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "ClusterLogs",
        "metadata": {"name": "faults"},
        "spec": {
            "selector": {"matchNamespaces": [NAMESPACE]},
            "logs": [
                {
                    "containers": [CONTAINER],
                    "logsFile": str(logs / "current.log"),
                    "previousLogsFile": str(logs / "previous.log"),
                    "follow": True,
                }
            ],
        },
    }
    (logs / "current.log").touch()
    (logs / "previous.log").touch()
    with ControlPlane() as cp:
        cp.start_cluster([cluster_logs])
        cp.kubectl("create", "namespace", NAMESPACE)
        yield Kwok(cp, logs)


_pods = iter(range(1000))


def running_pod(kwok: Kwok) -> str:
    """A new pod on the kwok node, once kwok reports its container running."""
    name = f"legacy-{next(_pods)}"
    manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"nodeName": KWOK_NODE, "containers": [{"name": CONTAINER, "image": "x"}]},
    }
    kwok.cp.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    deadline = time.monotonic() + WAIT
    while True:
        phase = kwok.cp.kubectl(
            "get", "pod", name, "-n", NAMESPACE, "-o", "jsonpath={.status.phase}"
        ).stdout
        if phase == "Running":
            return name
        assert time.monotonic() < deadline, f"pod {name} is {phase!r}"
        time.sleep(0.2)


BASE = datetime.now(UTC).replace(microsecond=0)


def cri(micros: int, text: str, stream: str = "stderr") -> str:
    """One CRI log line, stamped `micros` after `BASE`."""
    moment = BASE + timedelta(microseconds=micros)
    return f"{moment:%Y-%m-%dT%H:%M:%S.%f}Z {stream} F {text}\n"


def write(path: Path, *lines: str) -> None:
    with path.open("a") as out:
        out.write("".join(lines))


@asynccontextmanager
async def following(
    kwok: Kwok, pod: str, resume: PodLogPosition | None = None
) -> AsyncIterator[Follower]:
    api = connect_pod_logs(kubeconfig=str(kwok.cp.kubeconfig))
    registry = CollectorRegistry()
    blocks: asyncio.Queue[Block] = asyncio.Queue(4)
    settings = PodLogSettings(
        container=CONTAINER,
        pod=pod,
        namespace=NAMESPACE,
        backoff_initial=0.1,
        backoff_max=0.5,
        stall_check=1.0,
    )
    source = PodLogSource(settings, api, blocks, Metrics(registry), resume=resume)
    follower = Follower(registry, wait=WAIT, settle=0.5)

    async def collect() -> None:
        while True:
            follower.blocks.append(await blocks.get())

    tasks = [asyncio.create_task(source.run()), asyncio.create_task(collect())]
    try:
        yield follower
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await api.close()


@pytest.fixture
def log(kwok: Kwok) -> Iterator[Path]:
    """The log kwok serves for every pod of the namespace, empty for each test."""
    path = kwok.logs / "current.log"
    os.truncate(path, 0)
    yield path
    os.truncate(path, 0)


async def test_lines_stamped_backwards_are_read_live_and_after_a_resume(
    kwok: Kwok, log: Path
) -> None:
    pod = running_pod(kwok)
    write(log, cri(1000, "out 1", "stdout"), cri(990, "err 1"))
    async with following(kwok, pod) as first:
        await first.data_is(b"out 1\nerr 1\n")
        write(log, cri(2000, "out 2", "stdout"), cri(1990, "err 2"))
        await first.data_is(b"out 1\nerr 1\nout 2\nerr 2\n")
        position = first.position
    assert position is not None
    # While the sidecar is away: stamped before what was read, and the same line again.
    write(log, cri(1980, "err 3"), cri(990, "err 1"), cri(3000, "out 3", "stdout"))
    async with following(kwok, pod, resume=position) as second:
        await second.data_is(b"err 3\nerr 1\nout 3\n")
        assert second.value("pod_log_lines_skipped_total") == 4
        assert second.value("pod_log_gaps_total", reason="rotated") == 0


async def test_a_panic_written_in_two_parts_is_one_block(kwok: Kwok, log: Path) -> None:
    pod = running_pod(kwok)
    write(log, cri(1, "before"))
    async with following(kwok, pod) as follower:
        await follower.data_is(b"before\n")
        write(log, *(cri(2, line) for line in PANIC[:3]))
        await asyncio.sleep(1.0)  # the stream has sent the head long before the rest exists
        write(log, *(cri(3, line) for line in PANIC[3:]), cri(4, "after"))
        panic = "".join(line + "\n" for line in PANIC).encode()
        await follower.data_is(b"before\n" + panic + b"after\n")
        assert any(panic in block.data for block in follower.blocks), [
            block.data for block in follower.blocks
        ]


async def test_a_log_truncated_under_the_stream_is_counted_and_read_again(
    kwok: Kwok, log: Path
) -> None:
    pod = running_pod(kwok)
    first = "a long line, longer than the two that follow the truncation together " * 3
    write(log, cri(1, first))
    async with following(kwok, pod) as follower:
        await follower.data_is(first.encode() + b"\n")
        os.truncate(log, 0)
        write(log, cri(2, "short"), cri(3, "lines"))
        await follower.data_is(first.encode() + b"\nshort\nlines\n")
        assert follower.value("pod_log_truncations_total") == 1
        assert follower.value("pod_log_gaps_total", reason="rotated") == 0
        write(log, cri(4, "and on"))
        await follower.data_is(first.encode() + b"\nshort\nlines\nand on\n")


async def test_tracebacks_streamed_line_by_line_stay_with_their_lines(
    kwok: Kwok, log: Path
) -> None:
    """The kubelet's reader sends the log a line at a time: a chunk often ends exactly between a
    line and the traceback `logging` wrote after it. Each line still gets its whole traceback."""
    pod = running_pod(kwok)
    head = "[2024-01-11 14:21:03,806] kopf.objects         [ERROR   ] [ns/x] Handler {} failed."
    traceback = [
        "Traceback (most recent call last):",
        '  File "/app/handlers.py", line 12, in create_fn',
        '    raise ValueError("bad")',
        "ValueError: bad",
    ]
    records = [
        "".join(line + "\n" for line in [head.format(number), *traceback]).encode()
        for number in range(20)
    ]
    write(log, cri(1, "before"))
    async with following(kwok, pod) as follower:
        await follower.data_is(b"before\n")
        for number in range(20):
            # One write per record, as the runtime copies the controller's one write.
            write(log, *(cri(2 + number, line) for line in records[number].decode().splitlines()))
            await asyncio.sleep(0.05)
        await follower.data_is(b"before\n" + b"".join(records))
        for record in records:
            assert any(record in block.data for block in follower.blocks), record
