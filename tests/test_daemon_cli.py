"""`event-sidecar run`'s command line: flags, their environment variables, exit codes."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from sidecar.cli import build_parser, main
from sidecar.cli.run_command import daemon_settings
from sidecar.core.settings import DaemonSettings, PodLogSettings
from tests.daemon_support import write_rules


@pytest.fixture(autouse=True)
def keep_logging() -> Iterator[None]:
    """`run` installs its JSON handler on the root logger; give pytest its own back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def settings(argv: list[str], **environ: str) -> DaemonSettings:
    """`run`'s settings from its flags and `environ` (which must be free of problems)."""
    _, settings, problems = daemon_settings(build_parser().parse_args(["run", *argv]), environ)
    assert problems == []
    return settings


def test_every_option_can_come_from_the_environment_and_a_flag_wins() -> None:
    found = settings(
        ["--drain-seconds", "3"],
        POD_NAME="quota-0",
        SIDECAR_FILE="/logs/*.log,/other/app.log",
        SIDECAR_TCP="127.0.0.1:5170",
        SIDECAR_SOCKET_ALLOW_REMOTE="true",
        SIDECAR_DRAIN_SECONDS="7",
        SIDECAR_LISTEN="127.0.0.1:9999",
        SIDECAR_START="end",
        SIDECAR_SPAM_BURST="50",
        SIDECAR_MAX_LINE_BYTES="2048",
    )
    assert found.host == "quota-0"
    assert found.files.paths == ("/logs/*.log", "/other/app.log")
    assert found.files.start == "end"
    assert found.sockets.tcp == ("127.0.0.1:5170",)
    assert found.sockets.allow_remote is True
    assert found.queues.drain_deadline == 3.0
    assert (found.http.host, found.http.port) == ("127.0.0.1", 9999)
    assert found.correlation.spam_burst == 50
    assert found.files.max_line_bytes == found.sockets.max_line_bytes == 2048


def test_without_flags_or_variables_the_settings_are_the_defaults() -> None:
    # $POD_NAME names the host and the pod whose log --pod-log would follow.
    assert settings([], POD_NAME="quota-0") == DaemonSettings(
        host="quota-0", pod_log=PodLogSettings(pod="quota-0")
    )


def test_pod_log_takes_the_pod_and_namespace_from_the_downward_api() -> None:
    found = settings(["--pod-log", "manager"], POD_NAME="quota-0", POD_NAMESPACE="quota-system")
    assert found.pod_log == PodLogSettings(
        container="manager", pod="quota-0", namespace="quota-system"
    )


def test_a_repeated_flag_replaces_its_variable_rather_than_adding_to_it() -> None:
    found = settings(
        ["--file", "/a.log", "--tcp", "127.0.0.1:1", "--unix", "/s", "--unix", "/t"],
        SIDECAR_FILE="/logs/*.log,/other/app.log",
        SIDECAR_TCP="127.0.0.1:5170",
        SIDECAR_UNIX="/run/x.sock",
    )
    assert found.files.paths == ("/a.log",)
    assert found.sockets.tcp == ("127.0.0.1:1",)
    assert found.sockets.unix == ("/s", "/t")


def test_listen_addresses_are_strict_and_ipv6_is_bracketed() -> None:
    found = settings(["--listen", "[::1]:9000"])
    assert (found.http.host, found.http.port) == ("::1", 9000)
    for bad in ("::1:9000", "127.0.0.1:65536", "127.0.0.1", "[127.0.0.1]:80"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["run", "--listen", bad])


def test_a_bad_variable_does_not_outlive_its_call(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = str(write_rules(tmp_path))
    monkeypatch.setenv("SIDECAR_START", "sometimes")
    assert main(["check", rules]) == 0
    assert main(["run", "--rules", rules, "--dry-run", "--file", "x.log"]) == 2
    assert "SIDECAR_START='sometimes' is not one of" in capsys.readouterr().err
    monkeypatch.delenv("SIDECAR_START")
    # Fails at the cluster (1), not on the variable that is gone (2).
    missing = str(tmp_path / "missing-kubeconfig")
    assert main(["run", "--rules", rules, "--file", "x.log", "--kubeconfig", missing]) == 1
    assert "SIDECAR_START" not in capsys.readouterr().err


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
    assert main(["run", "--rules", rules, "--dry-run", "--listen", "127.0.0.1:0"]) == 2
    assert "no sources" in capsys.readouterr().err


def test_reload_and_state_metric_options_reach_their_settings() -> None:
    found = settings(
        ["--enable-reload-endpoint", "--reload-interval", "2", "--max-state-values", "7"],
        SIDECAR_STATE_TTL="600",
        SIDECAR_METRICS_CREATED="true",
    )
    assert found.reload.endpoint is True
    assert found.reload.poll_interval == 2.0
    assert found.transitions.max_state_values == 7
    assert found.transitions.state_ttl == 600.0
    assert found.http.created_series is True
    defaults = settings([])
    assert (defaults.reload.endpoint, defaults.http.created_series) == (False, False)
