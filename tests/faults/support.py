"""The fault suite's accounting: every transition written to the log is an Event stored or a drop
counted by cause, and none is stored twice."""

from __future__ import annotations

import collections
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.controlplane import REPO_ROOT, ControlPlane
from tests.daemon_support import Sidecar, append, events, http_get, phase_lines, run_args

#: A 409 is a write of an Event already stored (re-read after a restart or retried after a lost
#: answer): it is in the stored count, not a loss.
NOT_LOST = frozenset({"conflict"})


@dataclass(frozen=True)
class Accounting:
    written: int
    stored: int
    #: Drops by cause, as /metrics reports them (summed over the sidecar's runs).
    drops: dict[str, int]
    #: Events stored more than once (same object and message) or with a count above 1.
    doubled: int

    @property
    def lost(self) -> int:
        return sum(n for cause, n in self.drops.items() if cause not in NOT_LOST)

    @property
    def balanced(self) -> bool:
        return self.stored + self.lost == self.written and self.doubled == 0

    def __str__(self) -> str:
        drops = ", ".join(f"{n} {cause}" for cause, n in sorted(self.drops.items()) if n)
        return (
            f"{self.written} transitions written: {self.stored} Events stored, "
            f"{self.lost} dropped ({drops or 'none'}), {self.doubled} doubled"
        )


class Stream:
    """Transitions appended to one log in batches, each a phase never seen before."""

    def __init__(self, log: Path, namespace: str, objects: int = 4) -> None:
        self.log = log
        self.namespace = namespace
        self.objects = objects
        self.written = 0

    def write(self, count: int) -> None:
        lines = phase_lines(self.namespace, count, objects=self.objects, start=self.written)
        append(self.log, lines)
        self.written += count


def drops(process: Sidecar) -> dict[str, int]:
    """`event_sidecar_events_dropped_total` by cause."""
    _, text = http_get(process.url("/metrics"))
    return {
        sample.labels["cause"]: int(sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "event_sidecar_events_dropped_total"
    }


def account(control_plane: ControlPlane, stream: Stream, dropped: dict[str, int]) -> Accounting:
    items = events(control_plane, stream.namespace)
    seen = collections.Counter((i["involvedObject"]["name"], i["message"]) for i in items)
    doubled = sum(n - 1 for n in seen.values()) + sum(1 for i in items if i["count"] != 1)
    return Accounting(stream.written, len(seen), dropped, doubled)


def settle(
    control_plane: ControlPlane,
    stream: Stream,
    dropped: Callable[[], dict[str, int]],
    timeout: float = 60.0,
) -> Accounting:
    """Wait until every transition is accounted for; fail with the figures if that never comes."""
    last: list[Accounting] = []

    def balanced() -> bool:
        last[:] = [account(control_plane, stream, dropped())]
        return last[0].balanced

    deadline = time.monotonic() + timeout
    while not balanced():
        if time.monotonic() > deadline:
            raise AssertionError(f"not accounted for after {timeout} s: {last[0]}")
        time.sleep(0.5)
    time.sleep(1.0)  # and nothing late: no Event written twice after the balance was reached
    final = account(control_plane, stream, dropped())
    assert final.balanced, str(final)
    return final


def healthy(process: Sidecar) -> bool:
    return http_get(process.url("/healthz"))[0] == 200


def fault_args(control_plane: ControlPlane, tmp_path: Path, *extra: str) -> list[str]:
    """`run` for a fault test: the log, quick retries (2 s apart: a 24 s window), a short drain."""
    return run_args(
        control_plane,
        tmp_path,
        "--file",
        str(tmp_path / "controller.log"),
        "--retry-seconds",
        "2",
        "--drain-seconds",
        "5",
        *extra,
    )


def install_rbac(control_plane: ControlPlane, namespace: str, work: Path) -> Path:
    """Apply manifests/sidecar-rbac for a sidecar in `namespace` (through an overlay, as its
    kustomization documents); return the overlay's folder."""
    overlay = work / "rbac-overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"namespace: {namespace}\nresources:\n"
        f"  - {os.path.relpath(REPO_ROOT / 'manifests' / 'sidecar-rbac', overlay)}\n"
    )
    control_plane.kubectl("apply", "-k", str(overlay))
    return overlay


def service_account_kubeconfig(control_plane: ControlPlane, namespace: str, work: Path) -> Path:
    """A kubeconfig with a token of the `event-sidecar` ServiceAccount (TokenRequest API)."""
    done = control_plane.kubectl("create", "token", "event-sidecar", "-n", namespace)
    return control_plane.token_kubeconfig(done.stdout.strip(), work / "sidecar.kubeconfig")


def may_create_events(control_plane: ControlPlane, namespace: str) -> bool:
    subject = f"system:serviceaccount:{namespace}:event-sidecar"
    done = control_plane.kubectl(
        "auth", "can-i", "create", "events", "-n", namespace, "--as", subject, check=False
    )
    return done.stdout.strip() == "yes"
