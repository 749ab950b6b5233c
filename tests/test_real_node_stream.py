"""The pod log source on a real node, where the kwok tests (tests/faults/test_pod_log_kwok.py) and
the fake API (tests/test_sources_podlog.py) stood in: what the sidecar makes of the controller's
stderr, read through kube-apiserver -> kubelet -> the CRI log file, when

- the controller logs before the sidecar's program has started: every line is read, from the
  start of the log;
- kube-apiserver restarts while the sidecar follows the log: the followed stream breaks, the
  sidecar resumes it; no line is lost or read twice;
- the controller's container restarts twice while the sidecar cannot read: the instance it never
  saw is counted (`pod_log_gaps_total{reason="instance_missed"}`), the next one read whole.

"Lost or doubled in the Events" is judged against `event-sidecar replay` of the lines the
controller logged (`kubectl logs`): what one reading of each line writes. The cluster is the
one of tests/test_real_node.py: a real kubelet, containerd and runc, the image built from the
Dockerfile.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime

import pytest

from sidecar.inject import SIDECAR_NAME
from tests.controlplane import ControlPlane
from tests.realnode_pods import (
    apply_example,
    cri_lines,
    replayed_events,
    stored_events,
    totals,
    without_uid,
)
from tests.test_cluster_e2e import remove_example
from tests.test_real_node import (
    CONTROLLER,
    EXAMPLE_LOG,
    EXPECTED_EVENTS,
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

LINES = len(EXAMPLE_LOG.read_text().splitlines())


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """The control plane with its real node and the example's objects; afterwards the host is
    as it was before."""
    with running_cluster() as running:
        yield running


@pytest.fixture
def fresh(cluster: Cluster) -> Iterator[Cluster]:
    """No example pod and no Event before the test, nor after it."""
    remove_example(cluster.cp)
    yield cluster
    remove_example(cluster.cp)


def stamp(text: str) -> datetime:
    """A kubelet timestamp (RFC 3339, nanoseconds) to the microsecond."""
    head, _, fraction = text.removesuffix("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(fraction + '000000')[:6]}+00:00")


def controller_lines(cp: ControlPlane) -> list[str]:
    return [line for _, line in cri_lines(cp, NAMESPACE, CONTROLLER)]


def assert_events_as_replayed(cp: ControlPlane, *, split: bool = False) -> None:
    """The Events stored are what one reading of each line the controller logged writes: a line
    lost or read twice changes a count, or an Event comes or goes. ``split``: the occurrences
    are compared, however many Events carry them (see the apiserver restart's test)."""
    want = replayed_events(controller_lines(cp))
    assert len(want) == EXPECTED_EVENTS, want

    def same(got: list[tuple[str, str, str, int]]) -> bool:
        return totals(got) == totals(want) if split else got == want

    deadline = time.monotonic() + 60
    while not same(got := stored_events(cp)):  # the last writes may still be on their way
        if time.monotonic() > deadline:
            assert (totals(got) if split else got) == (totals(want) if split else want), (
                sidecar_log(cp)
            )
        time.sleep(1)
    time.sleep(3)
    assert same(stored_events(cp)), "more came"


def test_lines_logged_before_the_sidecar_starts_become_events(fresh: Cluster) -> None:
    """The sidecar's program starts 10 s after its container: the controller (whose start waits
    only for the container) has logged every line by then. With no checkpoint, the sidecar reads
    the log from its start, not from now."""
    cp = fresh.cp
    apply_example(cp, sidecar_delay=10)
    pod = wait_running(fresh, timeout=120)
    url = metrics_url(pod)
    assert settled(url) == LINES
    logged = cri_lines(cp, NAMESPACE, CONTROLLER)
    sidecar = cri_lines(cp, NAMESPACE, SIDECAR_NAME)
    assert len(logged) == LINES and sidecar, (len(logged), sidecar[:3])
    # Its first line is the program's start; the controller's last line came before it.
    assert stamp(logged[-1][0]) < stamp(sidecar[0][0]), (logged[-1], sidecar[0])
    assert metric(url, "event_sidecar_pod_log_gaps_total") == 0
    assert metric(url, "event_sidecar_pod_log_lines_skipped_total") == 0
    assert_events_as_replayed(cp)
    print(
        f"controller done {stamp(sidecar[0][0]) - stamp(logged[-1][0])} before the sidecar's "
        "first line",
        file=sys.stderr,
    )


def test_an_apiserver_restart_loses_and_doubles_no_line(fresh: Cluster) -> None:
    """kube-apiserver stopped (SIGTERM) and started again while the controller logs 20 lines a
    second (for half a minute) and the sidecar follows them: the stream breaks, the sidecar
    resumes it a second before the last line it read, skips what it read already, and reads the
    rest: every line once."""
    cp = fresh.cp
    apply_example(cp, rate=20)
    url = metrics_url(wait_running(fresh))
    deadline = time.monotonic() + 60
    while (before := metric(url, "event_sidecar_lines_read_total")) < 50:
        assert time.monotonic() < deadline, f"{before:.0f} lines read after 60 s"
        time.sleep(0.2)
    reconnects = metric(url, "event_sidecar_pod_log_reconnects_total")
    began = time.monotonic()
    cp.restart_apiserver()
    down = time.monotonic() - began
    during = metric(url, "event_sidecar_lines_read_total")
    assert during < LINES, f"done before the apiserver was back ({down:.1f} s): it shows nothing"
    deadline = time.monotonic() + 90
    while (read := settled(url)) < LINES:
        assert time.monotonic() < deadline, f"{read:.0f} lines read of {LINES}\n{sidecar_log(cp)}"
    assert metric(url, "event_sidecar_pod_log_reconnects_total") > reconnects
    assert read == LINES, f"{read:.0f} lines read of {LINES}"
    assert metric(url, "event_sidecar_pod_log_gaps_total") == 0
    skipped = metric(url, "event_sidecar_pod_log_lines_skipped_total")
    assert statuses(the_pod(cp))[SIDECAR_NAME].get("restartCount", 0) == 0
    # An Event made while its object cannot be looked up has no uid, which is part of the
    # correlator's key (client-go's): its repeats after the outage, with the uid, make a new
    # Event. So the occurrences are compared, not the Events that carry them.
    assert_events_as_replayed(cp, split=True)
    print(
        f"apiserver restarted in {down:.1f} s at line {before:.0f}: {read:.0f} lines read, "
        f"{skipped:.0f} skipped as read before; {len(stored_events(cp))} Events for "
        f"{EXPECTED_EVENTS} (without uid: {without_uid(cp)})",
        file=sys.stderr,
    )


def gaps(url: str, reason: str) -> float:
    """The sidecar's `pod_log_gaps_total` for one reason."""
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    wanted = f'event_sidecar_pod_log_gaps_total{{reason="{reason}"'
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(wanted)
    )


def kill_and_wait(cluster: Cluster, name: str, restarts: int) -> None:
    """`kill -9` of a container's process; back once the kubelet has restarted it and it runs."""
    cp = cluster.cp
    os.kill(container_pid(cluster.node, the_pod(cp), name), signal.SIGKILL)
    deadline = time.monotonic() + 60
    while True:
        status = statuses(the_pod(cp)).get(name, {})
        if status.get("restartCount", 0) >= restarts and "running" in status.get("state", {}):
            return
        assert time.monotonic() < deadline, f"{name} not restarted {restarts} times: {status}"
        time.sleep(0.3)


def test_an_instance_the_sidecar_never_saw_is_counted(fresh: Cluster) -> None:
    """The sidecar frozen (SIGSTOP: it cannot read) while the kubelet restarts the controller
    twice; thawed before its liveness probe gives up on it. The second instance came and went
    unread: one gap `instance_missed`; the third is read from its start, every line once."""
    cp = fresh.cp
    apply_example(cp)
    pod = wait_running(fresh)
    url = metrics_url(pod)
    assert settled(url) == LINES
    sidecar = container_pid(fresh.node, pod, SIDECAR_NAME)
    frozen = time.monotonic()
    os.kill(sidecar, signal.SIGSTOP)
    try:
        kill_and_wait(fresh, CONTROLLER, 1)
        time.sleep(3)  # the second instance logs the example (in about 4 s), unread
        kill_and_wait(fresh, CONTROLLER, 2)
    finally:
        os.kill(sidecar, signal.SIGCONT)
    seconds = time.monotonic() - frozen
    # Three failures 20 s apart restart it: it must not have been, or a restart is what read.
    assert seconds < 40, f"frozen {seconds:.0f} s: the liveness probe may have restarted it"
    deadline = time.monotonic() + 60
    while metric(url, "event_sidecar_pod_log_gaps_total") < 1:
        assert time.monotonic() < deadline, "no gap counted"
        time.sleep(0.5)
    deadline = time.monotonic() + 60
    while (read := settled(url)) < 2 * LINES:
        assert time.monotonic() < deadline, f"{read - LINES:.0f} of the third instance's lines"
    assert read == 2 * LINES, f"{read:.0f} lines read: the first and third instances are {LINES}"
    assert gaps(url, "instance_missed") == 1
    assert metric(url, "event_sidecar_pod_log_gaps_total") == 1, "instance_missed alone"
    assert statuses(the_pod(cp))[SIDECAR_NAME].get("restartCount", 0) == 0
    print(f"frozen {seconds:.1f} s; one instance missed, counted", file=sys.stderr)
