"""The kubelet rotates the controller's log under the sidecar's feet, on a real node.

A busy controller (the stand-in printing the example log $REPEAT times over, stamped now) on a
kubelet whose `containerLogMaxSize` is small and that checks every 3 s: its CRI log is renamed,
compressed and removed while the sidecar follows it through kube-apiserver -> kubelet. What
holds: every line the controller printed is read once, or a line is missing only where the
sidecar counts a gap; none is read twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest
import yaml

from sidecar.inject import SIDECAR_NAME
from tests.controlplane import REPO_ROOT, ControlPlane
from tests.test_cluster_e2e import remove_example
from tests.test_real_node import (
    CONTROLLER,
    EVENT_SIDECAR,
    EXAMPLE_LOG,
    NAMESPACE,
    Cluster,
    container_pid,
    metric,
    metrics_url,
    running_cluster,
    settled,
    sidecar_log,
    statuses,
    the_pod,
    wait_running,
)

pytestmark = pytest.mark.controlplane

REPEAT = 12
MAX_SIZE = "200Ki"  # the example log is 262 KiB: a rotation every pass or two


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    kubelet = {
        "containerLogMaxSize": MAX_SIZE,
        "containerLogMaxFiles": 3,
        "containerLogMonitorInterval": "3s",
    }
    with running_cluster(kubelet_config=kubelet) as running:
        yield running


def apply_busy_example(cp: ControlPlane) -> None:
    """The example, its controller told to print the log `REPEAT` times, injected offline."""
    rendered = list(
        yaml.safe_load_all(cp.kubectl("kustomize", str(REPO_ROOT / "manifests" / "example")).stdout)
    )
    [deployment] = [o for o in rendered if o["kind"] == "Deployment"]
    [controller] = [
        c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == CONTROLLER
    ]
    controller.setdefault("env", []).append({"name": "REPEAT", "value": str(REPEAT)})
    injected = subprocess.run(
        [*EVENT_SIDECAR, "inject", "-f", "-"],
        input=yaml.safe_dump_all(rendered),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=REPO_ROOT,
    ).stdout
    cp.kubectl("apply", "-f", "-", input=injected)


def test_lines_are_lost_only_as_counted_gaps_while_the_kubelet_rotates(cluster: Cluster) -> None:
    cp = cluster.cp
    apply_busy_example(cp)
    pod = wait_running(cluster)
    url = metrics_url(pod)
    written = REPEAT * len(EXAMPLE_LOG.read_text().splitlines())
    logs = cluster.node.work_dir / "pod-logs"
    rotated: set[str] = set()
    began = time.monotonic()
    last, still = -1.0, 0
    while True:
        rotated.update(
            p.name for p in logs.glob(f"{NAMESPACE}_*/{CONTROLLER}/*") if p.name != "0.log"
        )
        read = metric(url, "event_sidecar_lines_read_total")
        gaps = metric(url, "event_sidecar_pod_log_gaps_total")
        still = still + 1 if read == last else 0
        last = read
        if read >= written or still >= 15:  # all read, or nothing more for 15 s
            break
        assert time.monotonic() - began < 240, f"{read:.0f} of {written} lines after 240 s"
        time.sleep(1)
    time.sleep(2)
    read = metric(url, "event_sidecar_lines_read_total")
    gaps = metric(url, "event_sidecar_pod_log_gaps_total")
    print(
        f"{written} lines written, {read:.0f} read, {gaps:.0f} gaps counted, "
        f"{len(rotated)} rotated files seen, in {time.monotonic() - began:.0f} s",
        file=sys.stderr,
    )
    assert rotated, "the kubelet rotated nothing: the test shows nothing"
    assert read <= written, f"{read:.0f} lines read of {written} written: doubles"
    assert read == written or gaps > 0, f"{written - read:.0f} lines lost, no gap counted"
    assert metric(url, "event_sidecar_pod_log_lines_skipped_total") == 0


def test_a_sidecar_down_while_its_place_is_rotated_away_counts_the_gap(cluster: Cluster) -> None:
    """The sidecar frozen (SIGSTOP) while the busy controller's log is rotated past the line it
    last read, then killed: the kubelet restarts it, its checkpoint names lines the kubelet no
    longer serves, and the resumed sidecar counts the gap (`rotated`) rather than go on silently;
    no line is read twice."""
    cp = cluster.cp
    remove_example(cp)
    apply_busy_example(cp)
    pod = wait_running(cluster)
    url = metrics_url(pod)
    written = REPEAT * len(EXAMPLE_LOG.read_text().splitlines())
    deadline = time.monotonic() + 60
    while (before := metric(url, "event_sidecar_lines_read_total")) < 600:
        assert time.monotonic() < deadline, f"{before:.0f} lines read after 60 s"
        time.sleep(0.2)
    time.sleep(1.5)  # a checkpoint written past those lines (one a second)
    before = metric(url, "event_sidecar_lines_read_total")
    pid = container_pid(cluster.node, pod, SIDECAR_NAME)
    os.kill(pid, signal.SIGSTOP)
    time.sleep(15)  # about 2500 lines, 1 MiB: several rotations, the oldest files removed
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 90
    while statuses(pod := the_pod(cp))[SIDECAR_NAME].get("restartCount", 0) < 1:
        assert time.monotonic() < deadline, "the kubelet did not restart the sidecar"
        time.sleep(0.3)
    pod = wait_running(cluster)
    after = settled(url, timeout=120)
    time.sleep(3)
    after = metric(url, "event_sidecar_lines_read_total")
    rotated = gaps(url, "rotated")
    print(
        f"{written} lines written: {before:.0f} read before the freeze, {after:.0f} after the "
        f"restart, {rotated:.0f} rotated gaps counted",
        file=sys.stderr,
    )
    assert "resuming from checkpoint" in sidecar_log(cp)
    assert before + after <= written, "doubles"
    assert before + after < written, "nothing lost: the test showed nothing"
    assert rotated >= 1, f"{written - before - after:.0f} lines lost, no rotated gap counted"


def gaps(url: str, reason: str) -> float:
    """The sidecar's `pod_log_gaps_total` for one reason."""
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    wanted = f'event_sidecar_pod_log_gaps_total{{reason="{reason}"'
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(wanted)
    )
