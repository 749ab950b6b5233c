"""Shared fixtures; the control-plane ones run a real etcd + kube-apiserver (controlplane.py).

Control-plane fixtures never skip: a missing Go toolchain, a failed build or a server that does not
come up is an error. Tests that use them get the ``controlplane`` marker automatically, so
``pytest -m "not controlplane"`` runs the rest alone.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import settings
from kubernetes import client, config

from tests.controlplane import ControlPlane

# In CI the property tests replay the same examples every run (a new random failure belongs in a
# developer's run, not in a merge), and no example has a deadline on a busy 2-core machine.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """A running control plane shared by the whole session (admin kubeconfig: ``.kubeconfig``)."""
    cp = ControlPlane().start()
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture(scope="session")
def kube_api_client(control_plane: ControlPlane) -> Iterator[client.ApiClient]:
    """A ``kubernetes.client.ApiClient`` authenticated as cluster admin (group system:masters)."""
    api = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(control_plane.kubeconfig)
    )
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def namespace(request: pytest.FixtureRequest, kube_api_client: client.ApiClient) -> Iterator[str]:
    """A fresh namespace per test, named after the test; yields its name.

    There is no controller-manager, so its ``default`` ServiceAccount is created here (Pods cannot
    be created without it). Teardown only issues the delete: namespaces never finish deleting.
    """
    stem = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{stem or 'test'}-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(kube_api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    core.create_namespaced_service_account(
        name, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="default"))
    )
    yield name
    core.delete_namespace(name)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that (directly or not) uses the control plane with ``controlplane``."""
    for item in items:
        if "control_plane" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.controlplane)
