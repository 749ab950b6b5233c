"""Every `/metrics` scrape answers while tens of thousands of objects change state.

The per-state gauges are counted from the transition tracker at scrape time. The scrape runs on
the status server's thread while the event loop changes the tracker; iterating it there failed
12-34 % of scrapes with a 500 ("dictionary changed size during iteration"), so Prometheus recorded
`up=0` exactly when the controller was busy. The census now runs on the event loop, between
blocks, and every scrape answers with a consistent count.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from sidecar.core.rules import load_rules
from sidecar.core.settings import DaemonSettings, FileSettings, HttpSettings, TransitionSettings
from sidecar.daemon.service import Daemon
from sidecar.runtime.metrics import Metrics
from sidecar.runtime.sinks import MemorySink

RULES = """\
component: c
rules:
  - name: phase
    match: {message: Observed status}
    object: {apiVersion: v1, kind: ConfigMap, namespace: ns, name: "{name}"}
    transition: {state: "{phase}", first: skip}
    reason: PhaseChanged
"""
#: Objects remembered at once, and objects logged: every line is a new object, so every line
#: inserts one and evicts another (the dict the census walks changes size all the time).
KEYS = 20_000
OBJECTS = 2 * KEYS
LINES = 8 * KEYS


def lines(count: int) -> bytes:
    now = time.time()
    return b"".join(
        json.dumps(
            {
                "level": "info",
                "ts": now,
                "msg": "Observed status",
                "name": f"obj-{i % OBJECTS}",
                "phase": f"P{i % 3}",
            }
        ).encode()
        + b"\n"
        for i in range(count)
    )


def scrape(port: int) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            return int(answer.status), bytes(answer.read())
    except urllib.error.HTTPError as error:
        return int(error.code), bytes(error.read())


async def test_every_scrape_answers_while_objects_change_state(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(lines(LINES))
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    registry = CollectorRegistry()
    daemon = Daemon(
        load_rules(rules),
        MemorySink(keep=50),
        DaemonSettings(
            host="pod-0",
            http=HttpSettings(host="127.0.0.1", port=0),
            files=FileSettings(paths=(str(log),), poll_interval=0.05, watch="poll"),
            transitions=TransitionSettings(max_keys=KEYS),
        ),
        Metrics(registry),
    )
    running = asyncio.create_task(daemon.run())
    deadline = time.monotonic() + 60
    while daemon.http_port == 0:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    answers: list[int] = []
    counted: list[float] = []
    done = threading.Event()

    def scraper() -> None:
        """Scrape one after another, as a busy Prometheus (or several) would, until stopped."""
        while not done.is_set():
            status, body = scrape(daemon.http_port)
            answers.append(status)
            if status == 200:
                counted.extend(
                    sample.value
                    for family in text_string_to_metric_families(body.decode())
                    for sample in family.samples
                    if sample.name == "event_sidecar_objects_in_state"
                )

    thread = threading.Thread(target=scraper, daemon=True)
    thread.start()
    try:
        read = {"source": "file"}
        while (registry.get_sample_value("event_sidecar_lines_read_total", read) or 0) < LINES:
            assert time.monotonic() < deadline, "the lines were not all read"
            await asyncio.sleep(0.05)
    finally:
        done.set()
        await asyncio.to_thread(thread.join, 15)
    daemon.stop()
    assert await asyncio.wait_for(running, 15) == 0
    failed = [status for status in answers if status != 200]
    print(f"{len(answers)} scrapes while {LINES} lines were read, {len(failed)} failed")
    assert len(answers) >= 3, "too few scrapes overlapped the load to show anything"
    assert failed == []
    # A consistent count: never more objects than the tracker holds.
    assert counted and max(counted) <= KEYS
