"""The image built from the unchanged Dockerfile, run locked down as the injection runs it.

`tools/build-image.sh` builds it with buildah. No container registry is reachable where the tests
run, so its base is a stand-in made from Debian packages (`BASE=debian`: Debian 12's Python 3.11
in /usr/bin, where the official python:3.11-slim, the Dockerfile's default, has its own build in
/usr/local); everything above the base is what users build. Each container runs as the injected
sidecar does: read-only root, every capability dropped, no-new-privileges, uid 65532. Needs root,
buildah, podman and mmdebstrap (`make system-deps`): missing ones fail the tests, never skip them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from sidecar.inject.settings import DEFAULT_IMAGE
from tests.controlplane import REPO_ROOT
from tests.daemon_support import http_get, phase_line, wait_for, write_rules
from tests.webhook_helpers import free_port

BUILD_IMAGE = REPO_ROOT / "tools" / "build-image.sh"
ENV = {**os.environ, "CONTAINERS_CONF": str(REPO_ROOT / "tools" / "containers.conf")}
LOCKED_DOWN = (
    "--rm",
    "--read-only",
    "--cap-drop=ALL",
    "--security-opt=no-new-privileges",
    "--user=65532:65532",
    "--network=none",
)
STAND_IN_BASE = "localhost/event-sidecar-base:python3.11-bookworm"  # tools/build-image.sh's
VENV_LAYER_BUDGET = 120 * 1000 * 1000  # bytes, as podman reports layer sizes (SI units)
EXAMPLE = (  # make demo's replay
    "examples/quota-autoscaler.log",
    "--rules",
    "examples/quota-autoscaler.rules.yaml",
    "--host",
    "quota-autoscaler-7d9f8-x2x9k",
)


def podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args], env=ENV, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def image() -> str:
    """The image, built (the base once, then kept) by tools/build-image.sh; its name."""
    for tool in ("buildah", "podman", "mmdebstrap"):
        assert shutil.which(tool), f"{tool} is required: make system-deps installs it"
    proc = subprocess.run(
        ["bash", str(BUILD_IMAGE)],
        env={**ENV, "BASE": "debian", "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert proc.returncode == 0, f"tools/build-image.sh failed:\n{proc.stderr[-4000:]}"
    name = proc.stdout.strip().splitlines()[-1]
    assert name == DEFAULT_IMAGE
    return name


def run_image(image: str, *args: str, volumes: tuple[str, ...] = ()) -> tuple[int, str, str]:
    mounts = [f"--volume={v}" for v in (f"{REPO_ROOT / 'examples'}:/examples:ro", *volumes)]
    done = podman("run", *LOCKED_DOWN, *mounts, "--workdir=/", image, *args)
    return done.returncode, done.stdout, done.stderr


def test_every_manifest_names_the_image_the_build_tags() -> None:
    repository, _, tag = DEFAULT_IMAGE.rpartition(":")
    deployment = yaml.safe_load((REPO_ROOT / "manifests/webhook/deployment.yaml").read_text())
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == DEFAULT_IMAGE
    chart = REPO_ROOT / "charts" / "kube-event-sidecar"
    assert yaml.safe_load((chart / "values.yaml").read_text())["image"]["repository"] == repository
    assert yaml.safe_load((chart / "Chart.yaml").read_text())["appVersion"] == tag
    assert DEFAULT_IMAGE in (REPO_ROOT / "manifests/policy/policy.yaml").read_text()


def test_help_runs_locked_down(image: str) -> None:
    code, out, err = run_image(image)  # the image's CMD: --help
    assert code == 0, err
    for command in ("run", "replay", "check", "webhook", "inject"):
        assert re.search(rf"\b{command}\b", out), command
    code, out, _ = run_image(image, "--version")
    assert (code, out.strip()) == (0, "event-sidecar 0.1.0")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ctl"}}
    pod["spec"] = {"containers": [{"name": "controller", "image": "ctl:1"}]}
    done = subprocess.run(
        ["podman", "run", "--interactive", *LOCKED_DOWN, image, "inject", "-f", "-"],
        input=json.dumps(pod),
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    injected = json.loads(done.stdout)
    assert [c["name"] for c in injected["spec"]["initContainers"]] == ["event-sidecar"]


def test_check_and_replay_of_the_example_give_what_make_demo_gives(image: str) -> None:
    code, out, err = run_image(image, "check", "/examples/quota-autoscaler.rules.yaml")
    assert code == 0, err
    args = ("replay", *(a.replace("examples/", "/examples/") for a in EXAMPLE), "-o", "json")
    code, out, err = run_image(image, *args)
    assert code == 0, err
    local = subprocess.run(
        [sys.executable, "-m", "sidecar", *args[:1], *EXAMPLE, "-o", "json"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "events: 28 (13 created, 15 patched)" in err
    assert err == local.stderr, "the summary (lines read, decoded, events) differs from make demo's"
    assert out == local.stdout, "the Events differ from make demo's"


def test_the_image_holds_no_build_tools_and_its_venv_layer_is_small(image: str) -> None:
    code, out, err = _python_in(image)
    assert code == 0, err
    executable, pip, gcc, pip_module, aio, client = out.split(" ", 5)
    assert executable == "/opt/venv/bin/python"
    # The base's own pip (the official image has one too) is not the venv's: nothing installs.
    assert not pip.startswith("/opt/venv"), pip
    assert (gcc, pip_module, aio) == ("None", "None", "None")
    assert client.startswith("ModuleSpec")
    # buildah commits the final stage as one layer on the base: what the Dockerfile adds is the
    # image's size less the base's, and that is the venv.
    added = image_size(image) - image_size(STAND_IN_BASE)
    assert 0 < added < VENV_LAYER_BUDGET, added


def image_size(name: str) -> int:
    return int(podman("image", "inspect", "--format={{.Size}}", name).stdout.strip())


def _python_in(image: str) -> tuple[int, str, str]:
    """What the image's Python finds: its executable, pip, a compiler, kubernetes.aio."""
    probe = (
        "import importlib.util as u, shutil, sys; "
        "print(sys.executable, shutil.which('pip'), shutil.which('gcc'), "
        "u.find_spec('pip'), u.find_spec('kubernetes.aio'), u.find_spec('kubernetes.client'))"
    )
    done = podman("run", *LOCKED_DOWN, "--entrypoint=python", image, "-c", probe)
    return done.returncode, done.stdout.strip(), done.stderr


def answers(url: str) -> int | None:
    """The status `url` answers, or None while nothing listens yet."""
    try:
        return http_get(url)[0]
    except OSError:  # URLError included: the container is still starting
        return None


@pytest.fixture
def log_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder the sidecar's uid may write (its checkpoint), as an emptyDir would be."""
    folder = tmp_path / "logs"
    folder.mkdir()
    os.chown(folder, 65532, 65532)
    yield folder


def test_run_follows_a_file_and_serves_metrics(image: str, log_dir: Path, tmp_path: Path) -> None:
    rules = write_rules(tmp_path)
    log = log_dir / "controller.log"
    log.write_bytes(b"".join(phase_line("default", "obj", f"P{i}") for i in range(3)))
    port = free_port()
    name = f"es-{port}"
    started = podman(
        "run",
        "--detach",
        "--name",
        name,
        *(a for a in LOCKED_DOWN if a not in ("--rm", "--network=none")),  # inspected after
        "--network=host",  # /metrics on the host's loopback, as a pod's containers share one
        f"--volume={rules}:/rules/rules.yaml:ro",
        f"--volume={log_dir}:/logs",
        image,
        "run",
        "--rules=/rules/rules.yaml",
        "--file=/logs/controller.log",
        "--start=beginning",
        "--dry-run",
        f"--listen=127.0.0.1:{port}",
        "--poll-interval=0.1",
    )
    assert started.returncode == 0, started.stderr
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/readyz") == 200, "readyz", 60)
        with log.open("ab") as out:
            out.write(phase_line("default", "obj", "P3"))

        def emitted() -> float:
            status, text = http_get(f"http://127.0.0.1:{port}/metrics")
            assert status == 200
            found = re.findall(r"^event_sidecar_events_emitted_total\{[^}]*\} (\S+)$", text, re.M)
            return sum(float(v) for v in found)

        wait_for(lambda: emitted() == 4, "4 Events emitted", 30)
        stopped = podman("stop", "--time=30", name, timeout=60)
        assert stopped.returncode == 0, stopped.stderr
        code = podman("inspect", "--format={{.State.ExitCode}}", name).stdout.strip()
        assert code == "0", podman("logs", name).stderr[-3000:]
        checkpoint = json.loads((log_dir / ".event-sidecar-checkpoint.json").read_text())
        assert checkpoint, "the checkpoint is written on the volume, the root stays read-only"
    finally:
        podman("rm", "--force", name)
