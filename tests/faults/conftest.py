"""The fault suite: adversarial inputs and failures, each bounded in time and count, loopback only.

Every test here is marked `faults` (so `pytest -m faults` runs just the suite); `make test` runs
them with the rest. Tests that stop or freeze etcd or kube-apiserver get a control plane of their
own (`outage_plane`), so that a failed test cannot leave the session's one broken for the others.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.controlplane import ControlPlane

_HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def outage_plane() -> Iterator[ControlPlane]:
    """A control plane for tests that stop or freeze its servers."""
    cp = ControlPlane().start()
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture
def outage_namespace(outage_plane: ControlPlane) -> str:
    """A fresh namespace on `outage_plane`."""
    name = f"fault-{uuid.uuid4().hex[:8]}"
    outage_plane.kubectl("create", "namespace", name)
    return name


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.faults)
            if "outage_plane" in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.controlplane)
