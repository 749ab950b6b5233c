"""The Dockerfile cannot be built here (no container engine), so this test checks what it says
and performs its install steps for real: `pip wheel` of the package, then an offline `pip install`
of the wheels into a fresh venv, from which `event-sidecar` must run without writing a file."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.controlplane import REPO_ROOT

DOCKERFILE = REPO_ROOT / "Dockerfile"
POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "ctl"},
    "spec": {"containers": [{"name": "controller", "image": "ctl:1"}]},
}


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    pairs = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def test_the_dockerfile_is_multi_stage_non_root_and_read_only_friendly() -> None:
    steps = instructions()
    froms = [args for kw, args in steps if kw == "FROM"]
    assert froms == ["${BASE} AS build", "${BASE}"]
    assert ("ARG", "BASE=python:3.11-slim") in steps, "the official image stays the default base"
    final = steps[max(i for i, (kw, _) in enumerate(steps) if kw == "FROM") :]
    [user] = [args for kw, args in final if kw == "USER"]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) == 65532 and (not gid or int(gid) == 65532)
    env = " ".join(args for kw, args in final if kw == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    [entrypoint] = [args for kw, args in final if kw == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["event-sidecar"]
    build = steps[: len(steps) - len(final)]
    assert any(kw == "RUN" and "pip wheel" in args for kw, args in build)
    assert any(kw == "RUN" and "--no-index" in args and "venv" in args for kw, args in final)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Dockerfile's two stages, on this machine: returns the venv's bin folder."""
    root = tmp_path_factory.mktemp("image")
    src, wheels, venv = root / "src", root / "wheels", root / "venv"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):  # COPY pyproject.toml README.md ./
        shutil.copy(REPO_ROOT / name, src / name)
    shutil.copytree(  # COPY sidecar ./sidecar
        REPO_ROOT / "sidecar", src / "sidecar", ignore=shutil.ignore_patterns("__pycache__")
    )
    pip_env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheels), "."],
        cwd=src,
        env=pip_env,
        check=True,
        timeout=900,
    )
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [
            str(venv / "bin" / "pip"),
            "install",
            "--quiet",
            "--no-index",
            "--find-links",
            str(wheels),
            "kube-event-sidecar",
        ],
        env=pip_env,
        check=True,
        timeout=600,
    )
    return venv / "bin"


def snapshot(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def test_the_installed_image_runs_without_writing(installed: Path, tmp_path: Path) -> None:
    venv = installed.parent
    env = {
        "PATH": f"{installed}:/usr/bin:/bin",
        "PYTHONDONTWRITEBYTECODE": "1",
        "HOME": "/nonexistent",
    }
    before = snapshot(venv)
    version = subprocess.run(
        [str(installed / "event-sidecar"), "--version"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert version.stdout.strip() == "event-sidecar 0.1.0"
    injected = subprocess.run(
        [str(installed / "event-sidecar"), "inject", "-f", "-"],
        input=json.dumps(POD),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    pod = json.loads(injected.stdout)
    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["event-sidecar"]
    assert snapshot(venv) == before, "running must write nothing (read-only root filesystem)"
    assert list(tmp_path.iterdir()) == []
