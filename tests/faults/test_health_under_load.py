"""`/healthz` keeps answering while the daemon decodes worst-case lines.

A 60 KB logfmt line once held the event loop for 35 s (four failed health checks), so the
kubelet restarted the sidecar, which read the same line again: a crash loop. With linear decoders
and the line length limit, a worst-case line costs milliseconds and every probe is answered.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
from prometheus_client import CollectorRegistry

from sidecar.core.lines.scan import DEFAULT_MAX_LINE_BYTES
from sidecar.core.rules import load_rules
from sidecar.core.settings import DaemonSettings, FileSettings, HttpSettings
from sidecar.daemon.service import Daemon
from sidecar.runtime.metrics import Metrics
from sidecar.runtime.sinks import MemorySink

RULES = """\
component: c
rules:
  - name: r
    match: {message: x}
    object: {kind: Node, name: n1}
    reason: Seen
"""
#: Worst-case lines, each just under the line length limit.
LINES = 40
#: The injected liveness probe's timeout (sidecar/inject/patch.py): what a probe must beat.
PROBE_TIMEOUT = 3.0


def worst_line() -> bytes:
    head = b"level=info msg=x "
    return head + b"a" * (DEFAULT_MAX_LINE_BYTES - len(head) - 1) + b"\n"


async def test_healthz_answers_while_worst_case_lines_are_decoded(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(worst_line() * LINES)
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    registry = CollectorRegistry()
    daemon = Daemon(
        load_rules(rules),
        MemorySink(),
        DaemonSettings(
            host="pod-0",
            http=HttpSettings(host="127.0.0.1", port=0),
            files=FileSettings(paths=(str(log),), poll_interval=0.05, watch="poll"),
        ),
        Metrics(registry),
    )
    running = asyncio.create_task(daemon.run())
    answered = 0
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT)) as http:
        while daemon.http_port == 0:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        url = f"http://127.0.0.1:{daemon.http_port}/healthz"
        # At least one probe, then one after another until every line is read (when decoding
        # is quick the lines may all be read before the first probe).
        while True:
            assert time.monotonic() < deadline, "the lines were not all read"
            async with http.get(url) as response:
                assert response.status == 200
            answered += 1
            read = registry.get_sample_value("event_sidecar_lines_read_total", {"source": "file"})
            if (read or 0) >= LINES:
                break
            await asyncio.sleep(0.01)
    daemon.stop()
    assert await asyncio.wait_for(running, 15) == 0
    assert answered >= 1
    assert (
        registry.get_sample_value(
            "event_sidecar_events_emitted_total",
            {"reason": "Seen", "type": "Normal", "write": "create"},
        )
        is not None
    )
