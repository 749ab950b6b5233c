"""`event-sidecar run`'s command line: flags, their environment variables, exit codes."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from sidecar.cli import main
from sidecar.run import add_run_parser, settings_from
from tests.daemon_support import write_rules


@pytest.fixture(autouse=True)
def keep_logging() -> Iterator[None]:
    """`run` installs its JSON handler on the root logger; give pytest its own back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_run_parser(parser.add_subparsers())
    return parser.parse_args(["run", *argv])


def test_every_option_can_come_from_the_environment_and_a_flag_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POD_NAME", "quota-0")
    monkeypatch.setenv("SIDECAR_FILE", "/logs/*.log,/other/app.log")
    monkeypatch.setenv("SIDECAR_TCP", "127.0.0.1:5170")
    monkeypatch.setenv("SIDECAR_SOCKET_ALLOW_REMOTE", "true")
    monkeypatch.setenv("SIDECAR_DRAIN_SECONDS", "7")
    monkeypatch.setenv("SIDECAR_LISTEN", "127.0.0.1:9999")
    monkeypatch.setenv("SIDECAR_START", "end")
    monkeypatch.setenv("SIDECAR_SPAM_BURST", "50")
    settings = settings_from(parse(["--drain-seconds", "3"]))
    assert settings.host == "quota-0"
    assert settings.files.paths == ("/logs/*.log", "/other/app.log")
    assert settings.files.start == "end"
    assert settings.sockets.tcp == ("127.0.0.1:5170",)
    assert settings.sockets.allow_remote is True
    assert settings.queues.drain_deadline == 3.0
    assert (settings.http.host, settings.http.port) == ("127.0.0.1", 9999)
    assert settings.correlation.spam_burst == 50


def test_a_non_loopback_socket_needs_to_be_asked_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = str(write_rules(tmp_path))
    assert main(["run", "--rules", rules, "--dry-run", "--tcp", "0.0.0.0:5170"]) == 2
    assert "not a loopback address" in capsys.readouterr().err


def test_usage_errors_and_a_run_without_sources(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--dry-run"]) == 2
    assert "--rules" in capsys.readouterr().err
    (tmp_path / "bad.yaml").write_text("rules: 3\n")
    assert main(["run", "--rules", str(tmp_path / "bad.yaml"), "--dry-run"]) == 2
    rules = str(write_rules(tmp_path))
    assert main(["run", "--rules", rules, "--dry-run", "--listen", "127.0.0.1:0"]) == 1
    assert "no sources" in capsys.readouterr().err
