"""Shared fixtures; the control-plane ones run a real etcd + kube-apiserver (controlplane.py).

Control-plane fixtures never skip: a missing Go toolchain, a failed build or a server that does not
come up is an error. Tests that use them get the ``controlplane`` marker automatically, so
``pytest -m "not controlplane"`` runs the rest alone.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import settings
from kubernetes import client, config

from tests.controlplane import ControlPlane
from tests.kube_support import rqa_crd  # noqa: F401 - a fixture for every module (a CRD)

#: Every test leaves no task, thread or child process behind and has a time limit (hygiene.py).
pytest_plugins = ["tests.hygiene"]

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


class Capture(http.server.BaseHTTPRequestHandler):
    """Records every request (method, path, lower-cased headers, body); answers 201 or 200."""

    requests: ClassVar[list[tuple[str, str, dict[str, str], bytes]]] = []

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.requests.append((self.command, self.path, headers, body))
        reply = b"{}"
        self.send_response(201 if self.command == "POST" else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_POST = do_PATCH = _answer  # noqa: N815 - http.server's names

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def capture_server(tmp_path: Path) -> Iterator[Path]:
    """A plain-HTTP server that records requests; yields a kubeconfig pointing at it."""
    Capture.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Capture)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    kubeconfig = plain_kubeconfig(
        tmp_path / "capture.kubeconfig", f"http://127.0.0.1:{server.server_port}", "t0ken"
    )
    try:
        yield kubeconfig
    finally:
        server.shutdown()
        server.server_close()


def plain_kubeconfig(path: Path, server: str, token: str = "t") -> Path:
    """Write a kubeconfig for `server` (plain HTTP: a local fake or a closed port) with a bearer
    `token`; return its path."""
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": token}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    return path
