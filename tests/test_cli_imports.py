"""Each command imports only what it uses (start-up time and memory are mostly imports).

Run in a fresh interpreter, since this test process has long imported everything; the modules a
command loaded are read from `sys.modules` after it returns.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
RULES = ROOT / "bench/rules.yaml"

#: Runs one command in this interpreter, then prints the top-level packages it loaded.
_PROBE = """
import sys
from sidecar.cli import main
code = main(sys.argv[1:])
print(" ".join(sorted({name.split(".")[0] for name in sys.modules})))
sys.exit(code)
"""


def loaded_packages(*argv: str) -> set[str]:
    """The top-level packages in `sys.modules` after `event-sidecar ARGV` (which must exit 0)."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return set(done.stdout.splitlines()[-1].split())


@pytest.fixture
def empty_log(tmp_path: Path) -> Path:
    log = tmp_path / "empty.log"
    log.write_bytes(b"")
    return log


def test_replay_loads_neither_the_client_nor_aiohttp(empty_log: Path) -> None:
    """Without --kubeconfig, replay needs no Kubernetes client and no aiohttp."""
    loaded = loaded_packages(
        "replay", str(empty_log), "--rules", str(RULES), "-o", "none", "--summary", "json"
    )
    assert "sidecar" in loaded and "prometheus_client" in loaded  # the probe saw the run
    assert not loaded & {"kubernetes", "urllib3", "aiohttp", "requests", "jsonpatch"}


def test_check_loads_no_metrics_and_no_engine() -> None:
    """check validates (pydantic, yaml) and nothing more."""
    loaded = loaded_packages("check", str(RULES))
    assert "pydantic" in loaded and "yaml" in loaded
    assert not loaded & {"kubernetes", "aiohttp", "asyncio", "prometheus_client", "jsonpatch"}
    modules = subprocess.run(
        [sys.executable, "-c", _PROBE.replace('name.split(".")[0]', "name"), "check", str(RULES)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    assert not [m for m in modules if m.startswith(("sidecar.inject", "sidecar.offline.replay"))]


def test_parser_building_loads_no_injection_code() -> None:
    """Every command builds the whole parser; the injection flags' defaults must not import
    `sidecar.inject` (its pydantic models)."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from sidecar.cli import build_parser; build_parser(); "
            "print(sorted(m for m in sys.modules if m.startswith('sidecar.inject')))",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert done.stdout.strip() == "[]"


def test_rules_without_a_regex_load_no_re2(tmp_path: Path, empty_log: Path) -> None:
    """google-re2 (2.7 MiB resident) is imported by the first `regex:` condition only."""
    args = ("replay", str(empty_log), "-o", "none", "--summary", "json")
    assert "re2" not in loaded_packages(*args, "--rules", str(RULES))
    with_regex = tmp_path / "regex.rules.yaml"
    with_regex.write_text(
        "component: c\nrules:\n  - name: r\n    match: {message: {regex: '^Phase'}}\n"
        "    object: {apiVersion: v1, kind: Pod, name: p}\n    reason: R\n    message: m\n"
    )
    assert "re2" in loaded_packages(*args, "--rules", str(with_regex))


def test_replay_metrics_show_no_created_series() -> None:
    """`replay --metrics` prints what the daemon's /metrics shows: no `_created` series (turned
    off by the command, not by importing the metrics; a fresh interpreter, whose switch no other
    test has set)."""
    example = ROOT / "examples" / "quota-autoscaler"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "sidecar", "replay", f"{example}.log"),
            *("--rules", f"{example}.rules.yaml", "--metrics", "-o", "none"),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=ROOT,
    )
    assert "event_sidecar_lines_read_total" in done.stdout
    assert "_created" not in done.stdout
