"""The daemon in-process, with a slow in-memory sink: what a full Event queue does per source.

The file source pauses (nothing dropped, everything written eventually); the socket source never
waits for the API and counts what it cannot queue as `events_dropped{cause="queue_full"}`.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client import CollectorRegistry

from sidecar.core.events.corev1 import Event
from sidecar.core.rules import compile_rules, parse_rules
from sidecar.core.settings import (
    CheckpointSettings,
    DaemonSettings,
    FileSettings,
    HttpSettings,
    QueueSettings,
    SocketSettings,
)
from sidecar.daemon.service import Daemon
from sidecar.runtime.checkpoints import read_checkpoint
from sidecar.runtime.metrics import Metrics
from sidecar.runtime.sinks import MemorySink
from tests.daemon_support import RULES, phase_lines

LINES = 40


class SlowSink(MemorySink):
    """Takes 20 ms per write, like a slow apiserver."""

    def create(self, event: Event) -> None:
        time.sleep(0.02)
        super().create(event)


def settings(**groups: object) -> DaemonSettings:
    base: dict[str, object] = {
        "host": "pod-0",
        "http": HttpSettings(host="127.0.0.1", port=0),
        "queues": QueueSettings(events=2, blocks=2, drain_deadline=10.0),
        **groups,
    }
    return DaemonSettings(**base)  # type: ignore[arg-type]


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def until(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def emitted(registry: CollectorRegistry) -> float:
    return value(
        registry,
        "event_sidecar_events_emitted_total",
        reason="PhaseChanged",
        type="Normal",
        write="create",
    )


async def test_a_full_queue_pauses_the_file_source_and_loses_nothing(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    registry = CollectorRegistry()
    sink = SlowSink()
    daemon = Daemon(
        compile_rules(parse_rules(RULES, "rules.yaml")),
        sink,
        settings(
            files=FileSettings(paths=(str(log),), poll_interval=0.05, watch="poll"),
            checkpoint=CheckpointSettings(interval=0.2),
        ),
        Metrics(registry),
    )
    running = asyncio.create_task(daemon.run())
    log.write_bytes(b"".join(phase_lines("ns", LINES, objects=4)))
    await until(lambda: emitted(registry) == LINES, f"{LINES} Events")
    assert value(registry, "event_sidecar_events_dropped_total", cause="queue_full") == 0
    daemon.stop()
    assert await asyncio.wait_for(running, 15) == 0
    checkpoint = read_checkpoint(tmp_path / ".event-sidecar-checkpoint.json")
    assert checkpoint is not None
    assert [position.offset for position in checkpoint.files] == [log.stat().st_size]
    assert len(sink.events) == LINES


async def test_a_full_queue_makes_the_socket_source_drop_and_count(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    daemon = Daemon(
        compile_rules(parse_rules(RULES, "rules.yaml")),
        SlowSink(),
        settings(sockets=SocketSettings(tcp=("127.0.0.1:0",))),
        Metrics(registry),
    )
    running = asyncio.create_task(daemon.run())
    await until(lambda: daemon.sockets is not None and daemon.sockets.ready, "the socket")
    assert daemon.sockets is not None
    host, port = daemon.sockets.addresses[0].rsplit(":", 1)

    def send() -> None:
        with socket.create_connection((host, int(port))) as client:
            client.sendall(b"".join(phase_lines("ns", LINES, objects=4)))

    await asyncio.to_thread(send)

    def dropped() -> float:
        return value(registry, "event_sidecar_events_dropped_total", cause="queue_full")

    await until(lambda: emitted(registry) + dropped() == LINES, "every Event written or dropped")
    assert dropped() > 0
    daemon.stop()
    assert await asyncio.wait_for(running, 15) == 0
