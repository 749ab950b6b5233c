"""The daemon in-process with a sink that blocks: while the file source waits for room in a full
Event queue and the log's folder keeps changing, the event loop sleeps instead of spinning.

A change in the folder (here a file written beside the log every 10 ms, as the checkpoint and
the controller do) makes the inotify descriptor readable; if it were only drained when the source
is idle, it would stay readable while the source waits, and the loop would wake without end.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from sidecar.core.events.corev1 import Event
from sidecar.core.rules import compile_rules, parse_rules
from sidecar.core.settings import CheckpointSettings, FileSettings, QueueSettings
from sidecar.daemon.service import Daemon
from sidecar.runtime.metrics import Metrics
from sidecar.runtime.sinks import MemorySink
from tests.daemon_support import RULES, phase_lines
from tests.test_daemon_backpressure import settings, until, value

#: Seconds the CPU time is measured over.
WINDOW = 3.0
#: Of one core. Sleeping, the process uses about 1 % here (the thread writing beside the log
#: included); spinning, it used 70 % or more.
BOUND = 0.30


class BlockingSink(MemorySink):
    """Every write waits until `release` is set: an apiserver that stopped answering."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.waiting = 0
        self._lock = threading.Lock()

    def create(self, event: Event) -> None:
        with self._lock:
            self.waiting += 1
        self.release.wait(60)
        super().create(event)


def _touch_beside(path: Path, stop: threading.Event) -> None:
    """Write `path` every 10 ms until `stop`: the folder keeps changing."""
    count = 0
    while not stop.wait(0.01):
        count += 1
        path.write_text(str(count))


async def test_a_full_queue_and_a_busy_folder_leave_the_event_loop_asleep(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    registry = CollectorRegistry()
    sink = BlockingSink()
    daemon = Daemon(
        compile_rules(parse_rules(RULES, "rules.yaml")),
        sink,
        settings(
            files=FileSettings(paths=(str(log),), watch="inotify"),
            checkpoint=CheckpointSettings(interval=1.0),
            queues=QueueSettings(events=2, blocks=2, drain_deadline=10.0, writes=2),
        ),
        Metrics(registry),
    )
    # Ten per object: under the spam filter's burst, so every one is written in the end. Enough
    # that the poster's look-ahead and its decided writes (LOOKAHEAD each) fill up first.
    lines = 200
    running = asyncio.create_task(daemon.run())
    stop = threading.Event()
    toucher = threading.Thread(target=_touch_beside, args=(tmp_path / "beside.txt", stop))
    try:
        log.write_bytes(b"".join(phase_lines("ns", lines, objects=20)))
        await until(lambda: sink.waiting == 2, "both writes to block")
        await until(daemon.events.full, "the Event queue to fill")
        depth = value(registry, "event_sidecar_queue_depth")
        toucher.start()
        await asyncio.sleep(0.5)
        cpu, wall = time.process_time(), time.monotonic()
        await asyncio.sleep(WINDOW)
        share = (time.process_time() - cpu) / (time.monotonic() - wall)
        # Still blocked: the measurement was of a source waiting for room.
        assert daemon.events.full()
        assert value(registry, "event_sidecar_queue_depth") == depth
        assert sink.waiting == 2
        assert share < BOUND, f"{share:.0%} of a core while waiting"
    finally:
        stop.set()
        if toucher.is_alive():
            toucher.join()
        sink.release.set()
    await until(lambda: len(sink.events) == lines, f"{lines} Events")
    daemon.stop()
    assert await asyncio.wait_for(running, 15) == 0
