"""What the Dockerfile says: two stages, a non-root numeric user, no bytecode written at run time,
and the official Python image as the default base. tests/test_image.py builds it and runs it."""

from __future__ import annotations

import json
import re

from tests.controlplane import REPO_ROOT

DOCKERFILE = REPO_ROOT / "Dockerfile"


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
