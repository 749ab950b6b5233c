"""Helpers for the daemon tests: a rules file, log lines, and `event-sidecar run` as a real process.

The daemon is started with `--listen 127.0.0.1:0`; the port it bound is read from its own JSON
log on stderr (the `started` line), so tests never race for a free port.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.controlplane import REPO_ROOT, ControlPlane

_T = TypeVar("_T")

RULES = """\
component: test-controller
rules:
  - name: phase
    match: {message: Observed status}
    object: {apiVersion: v1, kind: ConfigMap, namespace: "{namespace}", name: "{name}"}
    transition: {state: "{phase}", first: emit, initial: none}
    type: Normal
    reason: PhaseChanged
    message: "phase {from} -> {to}"
  - name: failed
    match: {message: Update failed, level: error}
    object: {apiVersion: v1, kind: ConfigMap, namespace: "{namespace}", name: "{name}"}
    type: Warning
    reason: UpdateFailed
    message: "{error}"
"""


def write_rules(directory: Path) -> Path:
    path = directory / "rules.yaml"
    path.write_text(RULES)
    return path


def run_args(control_plane: ControlPlane, tmp_path: Path, *extra: str) -> list[str]:
    """`run`'s arguments for the tests: the rules, the cluster, quick file scans, then `extra`."""
    return [
        "--rules",
        str(write_rules(tmp_path)),
        "--kubeconfig",
        str(control_plane.kubeconfig),
        "--poll-interval",
        "0.1",
        "--rotate-wait",
        "1",
        # Every test Event must be written as itself: no spam filter or aggregation in the way.
        "--spam-burst",
        "100000",
        "--aggregate-max",
        "100000",
        *extra,
    ]


def phase_line(namespace: str, name: str, phase: str, ts: float | None = None) -> bytes:
    """A controller-runtime JSON line the `phase` rule matches."""
    document = {
        "level": "info",
        "ts": time.time() if ts is None else ts,
        "logger": "controller",
        "msg": "Observed status",
        "namespace": namespace,
        "name": name,
        "phase": phase,
    }
    return json.dumps(document).encode() + b"\n"


def phase_lines(namespace: str, count: int, *, objects: int = 1, start: int = 0) -> list[bytes]:
    """`count` transitions, each with a phase never seen before (so every one is an Event)."""
    base = time.time()
    return [
        phase_line(namespace, f"obj-{i % objects}", f"P{i}", base + i * 1e-3)
        for i in range(start, start + count)
    ]


def expected_messages(count: int, *, objects: int = 1, start: int = 0) -> list[tuple[str, str]]:
    """(object name, message) of the Events `phase_lines(..., start=0)` calls for."""
    last: dict[str, str] = {}
    out = []
    for i in range(start, start + count):
        name = f"obj-{i % objects}"
        out.append((name, f"phase {last.get(name, 'none')} -> P{i}"))
        last[name] = f"P{i}"
    return out


def wait_for(
    probe: Callable[[], _T | None], what: str, timeout: float = 30.0, interval: float = 0.1
) -> _T:
    """Call `probe` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what} (last: {result!r})")
        time.sleep(interval)


def events(control_plane: ControlPlane, namespace: str) -> list[dict[str, Any]]:
    """The Events in `namespace`, as `kubectl get events -o json` returns them."""
    done = control_plane.kubectl("get", "events", "-n", namespace, "-o", "json")
    items: list[dict[str, Any]] = json.loads(done.stdout)["items"]
    return items


def event_messages(control_plane: ControlPlane, namespace: str) -> list[tuple[str, str]]:
    return sorted(
        (item["involvedObject"]["name"], item["message"])
        for item in events(control_plane, namespace)
    )


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


class Sidecar:
    """`python -m sidecar run ...` as a child process, its stderr in a file."""

    def __init__(
        self,
        args: Sequence[str],
        work: Path,
        *,
        env: dict[str, str] | None = None,
    ) -> None:
        self.args = list(args)
        self.work = work
        self.env = {**os.environ, "POD_NAME": "sidecar-pod-0", **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.runs = 0

    @property
    def stderr_path(self) -> Path:
        return self.work / f"sidecar-{self.runs}.stderr"

    def start(self, *, wait_ready: bool = True) -> Sidecar:
        self.runs += 1
        with self.stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sidecar", "run", "--listen", "127.0.0.1:0", *self.args],
                cwd=REPO_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        if wait_ready:
            self.port = wait_for(self._started, "the sidecar to start", timeout=20)
            wait_for(self.ready, "/readyz to answer 200", timeout=20)
        return self

    def _started(self) -> int | None:
        assert self.process is not None
        if self.process.poll() is not None:
            pytest.fail(f"the sidecar exited with {self.process.returncode}:\n{self.stderr()}")
        for record in self.logs():
            if record.get("msg") == "started":
                return int(str(record["metrics"]).rsplit(":", 1)[1])
        return None

    def socket_addresses(self) -> list[str]:
        """What the `started` log line says the socket source listens on."""
        for record in self.logs():
            if record.get("msg") == "started":
                return [str(address) for address in record["sockets"]]
        return []

    def tcp_address(self) -> tuple[str, int]:
        for address in self.socket_addresses():
            host, _, port = address.rpartition(":")
            if port.isdigit():
                return host, int(port)
        raise AssertionError(f"no TCP address in {self.socket_addresses()}")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def ready(self) -> bool:
        with contextlib.suppress(OSError):
            return http_get(self.url("/readyz"))[0] == 200
        return False

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the /metrics samples named `name` that have `labels` (0 when none)."""
        from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415

        _, text = http_get(self.url("/metrics"))
        return sum(
            float(sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        )

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def logs(self) -> Iterator[dict[str, Any]]:
        for line in self.stderr().splitlines():
            with contextlib.suppress(ValueError):
                yield json.loads(line)

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; return the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def wait(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            pytest.fail(f"the sidecar did not exit within {timeout} s:\n{self.stderr()}")

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@contextlib.contextmanager
def sidecar(args: Sequence[str], work: Path, **options: Any) -> Iterator[Sidecar]:
    """A started sidecar, killed at the end if the test left it running."""
    process = Sidecar(args, work, **options)
    try:
        yield process.start()
    finally:
        process.close()


def append(path: Path, lines: Sequence[bytes]) -> None:
    with path.open("ab") as stream:
        stream.write(b"".join(lines))
