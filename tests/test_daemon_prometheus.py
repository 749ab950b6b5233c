"""What Prometheus users see: a real Prometheus scrapes the sidecar's /metrics.

Prometheus is Debian's `prometheus` package (`apt-get install -y prometheus`). A missing binary
fails this test: it is never skipped.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.controlplane import ControlPlane
from tests.daemon_support import append, http_get, phase_lines, sidecar, wait_for, write_rules

PROMETHEUS = Path("/usr/bin/prometheus")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def prometheus_binary() -> Path:
    if not PROMETHEUS.is_file():
        pytest.fail(
            f"{PROMETHEUS} is missing: install Debian's prometheus package "
            "(apt-get update && apt-get install -y prometheus)"
        )
    return PROMETHEUS


class Prometheus:
    """A Prometheus server on 127.0.0.1 scraping `target` every second."""

    def __init__(self, binary: Path, work: Path, target: str) -> None:
        self.port = free_port()
        config = work / "prometheus.yml"
        config.write_text(
            json.dumps(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "scrape_configs": [
                        {"job_name": "event-sidecar", "static_configs": [{"targets": [target]}]}
                    ],
                }
            )
        )
        self.log = work / "prometheus.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    str(binary),
                    f"--config.file={config}",
                    f"--storage.tsdb.path={work / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def ready(self) -> bool:
        if self.process.poll() is not None:
            pytest.fail(f"prometheus exited:\n{self.log.read_text(errors='replace')}")
        try:
            return http_get(f"http://127.0.0.1:{self.port}/-/ready", timeout=1)[0] == 200
        except OSError:
            return False

    def query(self, promql: str) -> list[dict[str, object]]:
        """The instant vector `promql` evaluates to, through the HTTP API."""
        query = urllib.parse.urlencode({"query": promql})
        status, body = http_get(f"http://127.0.0.1:{self.port}/api/v1/query?{query}")
        assert status == 200, body
        document = json.loads(body)
        assert document["status"] == "success", document
        result: list[dict[str, object]] = document["data"]["result"]
        return result

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


@pytest.fixture
def start_prometheus(
    prometheus_binary: Path, tmp_path: Path
) -> Iterator[Callable[[str], Prometheus]]:
    """Start a Prometheus scraping a target; every one started is stopped at the end."""
    started: list[Prometheus] = []

    def start(target: str) -> Prometheus:
        server = Prometheus(prometheus_binary, tmp_path, target)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def failure_line(namespace: str, name: str, error: str) -> bytes:
    document = {
        "level": "error",
        "ts": time.time(),
        "msg": "Update failed",
        "namespace": namespace,
        "name": name,
        "error": error,
    }
    return json.dumps(document).encode() + b"\n"


def test_prometheus_counts_the_events_the_test_caused(
    control_plane: ControlPlane,
    namespace: str,
    tmp_path: Path,
    start_prometheus: Callable[[str], Prometheus],
) -> None:
    log = tmp_path / "controller.log"
    args = [
        "--rules",
        str(write_rules(tmp_path)),
        "--kubeconfig",
        str(control_plane.kubeconfig),
        "--file",
        str(log),
    ]
    with sidecar(args, tmp_path) as process:
        prometheus = start_prometheus(f"127.0.0.1:{process.port}")
        wait_for(prometheus.ready, "Prometheus to be ready", timeout=30)
        append(log, phase_lines(namespace, 4, objects=2))
        append(log, [failure_line(namespace, "obj-0", f"conflict {i}") for i in range(3)])

        def counted() -> dict[str, float] | None:
            result = prometheus.query("sum by (reason) (event_sidecar_events_emitted_total)")
            counts = {
                str(sample["metric"]["reason"]): float(sample["value"][1])  # type: ignore[index]
                for sample in result
            }
            return counts if counts == {"PhaseChanged": 4, "UpdateFailed": 3} else None

        wait_for(counted, "Prometheus to see 4 PhaseChanged and 3 UpdateFailed", timeout=30)
        up = prometheus.query('up{job="event-sidecar"}')
        assert [sample["value"][1] for sample in up] == ["1"]  # type: ignore[index]
        assert process.terminate() == 0
