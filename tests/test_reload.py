"""Rules hot reload under a running daemon: a ConfigMap-style `..data` swap, SIGHUP, the HTTP
endpoint; invalid files refused and counted; transition state kept or dropped as documented."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

import sidecar.daemon.reload
from sidecar.core.rules import RuleSet, compile_rules, parse_rules
from sidecar.core.settings import (
    CheckpointSettings,
    DaemonSettings,
    FileSettings,
    HttpSettings,
    ReloadSettings,
    WatchMode,
)
from sidecar.daemon.service import Daemon
from sidecar.runtime.metrics import Metrics
from sidecar.runtime.sinks import MemorySink
from tests.daemon_support import RULES, phase_line

#: The same tracking as `RULES` (the `phase` rule's state and key): only the reason differs.
RENAMED = RULES.replace("reason: PhaseChanged", "reason: PhaseMoved")
#: The `phase` rule renders its state differently: its state cannot carry over.
RETRACKED = RENAMED.replace('state: "{phase}"', 'state: "{phase}!"')
#: Not a rules file: a key the schema does not know, on line 4 of the `phase` rule.
INVALID = RULES.replace("    match: {message: Observed status}", "    matches: {message: x}")


def project(volume: Path, files: dict[str, str]) -> None:
    """Update `volume` exactly as the kubelet's atomic writer does for a ConfigMap volume.

    The payload goes into a new hidden timestamped folder; a `..data_tmp` symlink to it is
    renamed over `..data` (the one atomic step); the visible names are symlinks through `..data`,
    created once; then the previous timestamped folder is removed.
    """
    volume.mkdir(exist_ok=True)
    data = volume / "..data"
    old = data.readlink() if data.is_symlink() else None
    stamp = Path(tempfile.mkdtemp(prefix="..2026_11_28_18_00_00.", dir=volume))
    for name, content in files.items():
        (stamp / name).write_text(content)
    (volume / "..data_tmp").symlink_to(stamp.name)
    (volume / "..data_tmp").rename(data)
    for name in files:
        visible = volume / name
        if not visible.is_symlink():
            visible.symlink_to(f"..data/{name}")
    if old is not None:
        shutil.rmtree(volume / old)


@dataclass
class Running:
    daemon: Daemon
    sink: MemorySink
    registry: CollectorRegistry
    log: Path
    rules: Path

    def write(self, phase: str, name: str = "obj-0") -> None:
        with self.log.open("ab") as out:
            out.write(phase_line("ns", name, phase))

    async def event(self, reason: str, message: str) -> None:
        """Until an Event with `reason` and `message` is written."""
        for _ in range(500):
            if any((e.reason, e.message) == (reason, message) for e in self.sink.events.values()):
                return
            await asyncio.sleep(0.02)
        seen = sorted((e.reason, e.message) for e in self.sink.events.values())
        pytest.fail(f"no Event {reason}: {message!r}; written: {seen}")

    async def reloads(self, result: str, number: float) -> None:
        """Until `rules_reloads_total{result}` is `number`."""
        for _ in range(500):
            if self.reloads_now(result) == number:
                return
            await asyncio.sleep(0.02)
        pytest.fail(f"reloads_total{{result={result}}} is {self.reloads_now(result)}")

    def reloads_now(self, result: str) -> float | None:
        return self.registry.get_sample_value(
            "event_sidecar_rules_reloads_total", {"result": result}
        )

    def rules_hash(self) -> str:
        return next(
            sample.labels["hash"]
            for family in self.registry.collect()
            if family.name == "event_sidecar_rules_info"
            for sample in family.samples
        )


@contextlib.asynccontextmanager
async def start(
    tmp_path: Path,
    rules: Path,
    *,
    watch: WatchMode = "auto",
    interval: float = 3600.0,
    endpoint: bool = False,
    signals: bool = False,
    restart: bool = False,
) -> AsyncIterator[Running]:
    """A daemon following `tmp_path/app.log` (emptied first, unless this is a `restart` that
    resumes from the checkpoint beside it) with the rules at `rules`."""
    log = tmp_path / "app.log"
    if not restart:
        log.write_bytes(b"")
    settings = DaemonSettings(
        host="pod-0",
        http=HttpSettings(host="127.0.0.1", port=0),
        files=FileSettings(paths=(str(log),), poll_interval=0.05, watch=watch),
        checkpoint=CheckpointSettings(interval=0.2),
        reload=ReloadSettings(poll_interval=interval, endpoint=endpoint),
    )
    registry, sink = CollectorRegistry(), MemorySink()
    first = compile_rules(parse_rules(rules.read_text(), str(rules)))
    daemon = Daemon(first, sink, settings, Metrics(registry), rules_path=str(rules))
    task = asyncio.create_task(daemon.run(install_signals=signals))
    for _ in range(500):
        if daemon.files is not None and daemon.files.ready and daemon.http_port:
            break
        await asyncio.sleep(0.01)
    try:
        yield Running(daemon, sink, registry, log, rules)
    finally:
        daemon.stop()
        assert await asyncio.wait_for(task, 15) == 0


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@pytest.mark.parametrize(("watch", "interval"), [("inotify", 3600.0), ("poll", 0.1)])
async def test_a_configmap_swap_takes_effect_and_an_invalid_one_is_refused(
    tmp_path: Path, watch: WatchMode, interval: float
) -> None:
    """inotify alone (the hash check is an hour away), then the poll fallback alone."""
    volume = tmp_path / "config"
    project(volume, {"rules.yaml": RULES})
    async with start(tmp_path, volume / "rules.yaml", watch=watch, interval=interval) as running:
        assert running.rules_hash() == digest(RULES)
        running.write("A")
        await running.event("PhaseChanged", "phase none -> A")

        project(volume, {"rules.yaml": RENAMED})
        await running.reloads("success", 1)
        assert running.rules_hash() == digest(RENAMED)
        assert len(list(volume.glob("..2026_*"))) == 1
        running.write("B")
        # The tracking did not change: the state survived, B is a change from A.
        await running.event("PhaseMoved", "phase A -> B")

        project(volume, {"rules.yaml": INVALID})
        await running.reloads("failure", 1)
        assert running.rules_hash() == digest(RENAMED)
        running.write("C")
        await running.event("PhaseMoved", "phase B -> C")
        await asyncio.sleep(3 * interval if watch == "poll" else 0.2)
        assert running.reloads_now("failure") == 1  # reported once, not at every check

        project(volume, {"rules.yaml": RETRACKED})
        await running.reloads("success", 2)
        running.write("D")
        # The state is rendered differently now: dropped, D is a first observation.
        await running.event("PhaseMoved", "phase none -> D!")


async def test_sighup_reloads_a_file_edited_in_place(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    async with start(tmp_path, rules, watch="poll", signals=True) as running:
        running.write("A")
        await running.event("PhaseChanged", "phase none -> A")
        rules.write_text(RENAMED)
        os.kill(os.getpid(), signal.SIGHUP)
        await running.reloads("success", 1)
        running.write("B")
        await running.event("PhaseMoved", "phase A -> B")
        os.kill(os.getpid(), signal.SIGHUP)
        await running.reloads("unchanged", 1)


async def test_the_reload_endpoint_answers_with_the_problems(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    async with start(tmp_path, rules, watch="poll", endpoint=True) as running:
        url = f"http://127.0.0.1:{running.daemon.http_port}/-/reload"
        async with aiohttp.ClientSession() as http:
            rules.write_text(INVALID)
            async with http.post(url) as answer:
                assert answer.status == 422
                body = await answer.json()
            assert body["result"] == "failure"
            assert body["hash"] == hashlib.sha256(RULES.encode()).hexdigest()
            assert any(f"{rules}:4: rule phase:" in problem for problem in body["problems"])
            rules.write_text(RENAMED)
            async with http.post(url) as answer:
                assert answer.status == 200
                assert (await answer.json())["result"] == "success"
            async with http.get(url) as answer:
                assert answer.status == 405
        assert running.reloads_now("failure") == 1
        assert running.reloads_now("success") == 1


async def test_the_reload_endpoint_is_off_unless_enabled(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    async with start(tmp_path, rules, watch="poll") as running:
        url = f"http://127.0.0.1:{running.daemon.http_port}/-/reload"
        async with aiohttp.ClientSession() as http, http.post(url) as answer:
            assert answer.status == 404


async def test_an_invalid_file_is_reported_again_after_the_good_one_came_back(
    tmp_path: Path,
) -> None:
    volume = tmp_path / "config"
    project(volume, {"rules.yaml": RULES})
    async with start(tmp_path, volume / "rules.yaml", watch="poll", interval=0.05) as running:
        for expected in (1, 2):
            project(volume, {"rules.yaml": INVALID})
            await running.reloads("failure", expected)
            project(volume, {"rules.yaml": RULES})
            await asyncio.sleep(0.3)
        assert running.reloads_now("success") == 0
        assert running.rules_hash() == digest(RULES)


async def test_a_restart_keeps_transition_state_exactly_when_a_reload_would(
    tmp_path: Path,
) -> None:
    """The checkpoint says what each tracker's states meant: restarted under rules that render
    the state differently, the old state is dropped (a reload drops it too), so the next line is
    a first observation, not a spurious `A -> B!` comparing states of two kinds."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    async with start(tmp_path, rules, watch="poll") as running:
        running.write("A")
        await running.event("PhaseChanged", "phase none -> A")
    rules.write_text(RENAMED)  # the same tracking: the state carries over the restart
    async with start(tmp_path, rules, watch="poll", restart=True) as running:
        running.write("B")
        await running.event("PhaseMoved", "phase A -> B")
    rules.write_text(RETRACKED)  # `{phase}!`: the states saved are of another kind
    async with start(tmp_path, rules, watch="poll", restart=True) as running:
        running.write("C")
        await running.event("PhaseMoved", "phase none -> C!")
        assert not any("B -> C!" in e.message for e in running.sink.events.values())


async def test_an_unchanged_file_is_checked_by_its_hash_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check every `poll_interval` of an idle daemon reads and hashes the file; it parses and
    validates it only when the content differs from what runs."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    async with start(tmp_path, rules, watch="poll", interval=0.05) as running:
        parsed: list[str] = []
        real = sidecar.daemon.reload.read_rules

        def counting(path: str) -> tuple[str, RuleSet]:
            parsed.append(path)
            return real(path)

        monkeypatch.setattr(sidecar.daemon.reload, "read_rules", counting)
        await asyncio.sleep(0.5)  # about ten checks
        assert parsed == []
        assert running.reloads_now("unchanged") == 0  # a check counts only a change
        rules.write_text(RENAMED)
        await running.reloads("success", 1)
        assert parsed
