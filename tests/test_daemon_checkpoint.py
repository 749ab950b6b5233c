"""The pieces that make restarts exact: atomic checkpoints and Event names derived from lines.
Also the daemon's own JSON logs."""

from __future__ import annotations

import io
import json
import logging
import os
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from sidecar.core.events.corev1 import InvolvedObject
from sidecar.core.events.eventsv1 import make_modern_event
from sidecar.core.events.series import SeriesCache, SeriesRecord
from sidecar.model import EventSpec, FilePosition, ObjectTarget, PodLogPosition
from sidecar.recording.naming import LineNamer
from sidecar.runtime.checkpoints import (
    Checkpoint,
    read_checkpoint,
    remove_temporaries,
    write_checkpoint,
)
from sidecar.runtime.selflog import JsonFormatter

CHECKPOINT = Checkpoint(
    files=(FilePosition("/logs/app.log", 66, 1234, "ab" * 16, 256, 4096),),
    transitions=(("phase", "ConfigMap", "ns", "obj", "", "Ready"),),
)


def test_a_checkpoint_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.json"
    write_checkpoint(path, CHECKPOINT)
    assert read_checkpoint(path) == CHECKPOINT
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.json"]


def test_a_pod_log_position_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.json"
    position = PodLogPosition("manager", "containerd://abc", 2, 1_764_350_000_123_456_789, ("a1",))
    checkpoint = Checkpoint(transitions=(("rule", "key", "state"),), pod_logs=(position,))
    write_checkpoint(path, checkpoint)
    assert read_checkpoint(path) == checkpoint


def _series() -> tuple[SeriesRecord, ...]:
    cache = SeriesCache()
    for second in range(4):
        event = make_modern_event(
            regarding=InvolvedObject("Pod", "web-0", "shop", "v1", "uid-1", "7"),
            related=InvolvedObject("Node", "n1") if second else None,
            type="Warning",
            reason="BackOff",
            action="Restarting",
            note="restarting 东",
            controller="quota-autoscaler",
            host="pod-7",
            now=1_700_000_000.5 + second,
            name=f"web-0.{second}",
        )
        cache.observe(event, event.event_time)
    return cache.export()


def test_the_series_state_round_trips_and_an_old_checkpoint_loads_without_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "checkpoint.json"
    checkpoint = replace(CHECKPOINT, series=_series())
    assert len(checkpoint.series) == 2
    write_checkpoint(path, checkpoint)
    assert read_checkpoint(path) == checkpoint
    # Written before the series state existed: no "series" key at all.
    document = orjson.loads(CHECKPOINT.to_json())
    del document["series"]
    path.write_bytes(orjson.dumps(document))
    assert read_checkpoint(path) == CHECKPOINT


def test_a_malformed_series_is_skipped_and_the_rest_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "checkpoint.json"
    series = _series()
    document = orjson.loads(replace(CHECKPOINT, series=series).to_json())
    document["series"][0]["stored"] = -1
    path.write_bytes(orjson.dumps(document))
    assert read_checkpoint(path) == replace(CHECKPOINT, series=series[1:])
    assert "ignoring a malformed series" in caplog.text


def test_temporaries_left_by_a_killed_process_are_removed(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.json"
    write_checkpoint(path, CHECKPOINT)
    (tmp_path / ".checkpoint.json.4242.tmp").write_bytes(b"{")
    remove_temporaries(path)
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.json"]


def test_a_failed_write_leaves_the_old_checkpoint_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "checkpoint.json"
    write_checkpoint(path, CHECKPOINT)

    def full_disk(fd: int, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(OSError, match="No space"):
        write_checkpoint(path, Checkpoint())
    monkeypatch.undo()
    assert read_checkpoint(path) == CHECKPOINT
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.json"]


@pytest.mark.parametrize(
    "content", [b"", b"{", b"[]", b'{"version": 99}', b'{"version": 1, "files": [{"path": 1}]}']
)
def test_an_unusable_checkpoint_is_ignored(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "checkpoint.json"
    path.write_bytes(content)
    assert read_checkpoint(path) is None
    assert read_checkpoint(tmp_path / "missing.json") is None


def spec(message: str, time: float | None) -> EventSpec:
    return EventSpec(
        "phase", ObjectTarget("ConfigMap", "obj", "ns", "v1"), "Normal", "Changed", message, time
    )


def name(namer: LineNamer, current: EventSpec | None) -> str:
    namer.current = current
    try:
        return namer("obj")
    finally:
        namer.current = None


def test_event_names_come_from_the_line_so_a_re_read_line_gets_the_same_name() -> None:
    first, again = LineNamer("c", "pod-0"), LineNamer("c", "pod-0")
    line = spec("a -> b", 1_700_000_000.5)
    assert name(first, line) == name(first, line) == name(again, line)
    assert name(first, line).startswith("obj.")
    assert len(name(first, line)) == len("obj.") + 16
    assert name(first, spec("a -> b", 1_700_000_001.5)) != name(first, line)
    assert name(first, spec("b -> c", 1_700_000_000.5)) != name(first, line)
    assert name(LineNamer("c", "pod-1"), line) != name(first, line)
    # Without a line time: client-go's wall-clock names, never repeating.
    assert name(first, spec("x", None)) != name(first, spec("x", None))
    assert name(first, None) != name(first, None)


def test_own_logs_are_json_lines_with_the_extra_fields() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.sidecar.logs")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("file %s rotated", "app.log", extra={"path": "/logs/app.log"})
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    first, second = (orjson.loads(line) for line in stream.getvalue().splitlines())
    assert first["level"] == "warning"
    assert first["msg"] == "file app.log rotated"
    assert first["path"] == "/logs/app.log"
    assert first["ts"].endswith("Z")
    assert "ValueError: boom" in second["error"]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("offset", -1),
        ("offset", 1 << 64),
        ("offset", "12"),
        ("offset", 1.5),
        ("offset", True),
        ("fingerprint_size", 1 << 40),
        ("fingerprint_size", -5),
        ("inode", None),
        ("path", ["a"]),
        ("fingerprint", 7),
    ],
)
def test_a_checkpoint_value_no_writer_produces_is_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, key: str, value: object
) -> None:
    # Used, a negative offset or a huge fingerprint size fails the file source at every start.
    path = tmp_path / "checkpoint.json"
    document = orjson.loads(CHECKPOINT.to_json())
    document["files"][0][key] = value
    path.write_text(json.dumps(document))  # orjson refuses integers past 64 bits
    with caplog.at_level(logging.WARNING):
        assert read_checkpoint(path) is None
    assert "malformed checkpoint" in caplog.text
    assert key in caplog.text
