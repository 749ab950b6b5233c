"""The webhook server over real TLS on 127.0.0.1: AdmissionReview round trips, HTTP 400 for
malformed requests, fail-open on internal errors, skip reasons counted, certificate reload."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import jsonpatch
import pytest
import trustme
from prometheus_client import CollectorRegistry

from sidecar.inject import PREFIX, SIDECAR_NAME, InjectSettings
from sidecar.inject.patch import Operation
from sidecar.inject.webhook import (
    CertificateReloader,
    WebhookMetrics,
    WebhookSettings,
    create_app,
    serve,
)
from tests.controlplane import REPO_ROOT
from tests.webhook_helpers import (
    admission_review,
    free_port,
    issue_serving_cert,
    opted_in_pod,
    replace_file,
    served_serial,
    write_serving_cert,
)


@dataclass
class Server:
    url: str
    port: int
    registry: CollectorRegistry
    session: aiohttp.ClientSession
    ca: trustme.CA
    cert_file: Path
    key_file: Path

    def sample(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    async def review(self, body: Mapping[str, Any]) -> dict[str, Any]:
        async with self.session.post(f"{self.url}/mutate?timeout=5s", json=body) as resp:
            assert resp.status == 200, await resp.text()
            answer: dict[str, Any] = await resp.json()
            return answer


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


async def start(
    tmp_path: Path, ca: trustme.CA, patcher: Any = None
) -> tuple[Server, asyncio.Event, asyncio.Task[None]]:
    cert_file, key_file = tmp_path / "tls.crt", tmp_path / "tls.key"
    write_serving_cert(ca, cert_file, key_file)
    port = free_port()
    registry = CollectorRegistry()
    stop = asyncio.Event()
    settings = WebhookSettings(
        cert_file=str(cert_file),
        key_file=str(key_file),
        port=port,
        reload_interval=0.05,
        inject=InjectSettings(image="img:1"),
    )
    kwargs = {"patcher": patcher} if patcher else {}
    task = asyncio.create_task(serve(settings, registry, stop, **kwargs))
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ctx))
    server = Server(f"https://127.0.0.1:{port}", port, registry, session, ca, cert_file, key_file)
    for _ in range(100):  # until it listens
        try:
            async with session.get(f"{server.url}/healthz") as resp:
                if resp.status == 200:
                    break
        except aiohttp.ClientConnectionError:
            await asyncio.sleep(0.02)
    return server, stop, task


@pytest.fixture
async def server(tmp_path: Path, ca: trustme.CA) -> AsyncIterator[Server]:
    srv, stop, task = await start(tmp_path, ca)
    yield srv
    await srv.session.close()
    stop.set()
    await task


def decoded_patch(answer: dict[str, Any]) -> list[Operation]:
    patch: list[Operation] = json.loads(base64.b64decode(answer["response"]["patch"]))
    return patch


async def test_an_opted_in_pod_gets_an_applicable_patch(server: Server) -> None:
    review = admission_review(opted_in_pod())
    answer = await server.review(review)
    assert answer["apiVersion"] == "admission.k8s.io/v1"
    assert answer["kind"] == "AdmissionReview"
    response = answer["response"]
    assert response["uid"] == review["request"]["uid"]
    assert response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    pod = jsonpatch.apply_patch(review["request"]["object"], decoded_patch(answer))
    assert [c["name"] for c in pod["spec"]["initContainers"]] == [SIDECAR_NAME]
    assert server.sample("event_sidecar_inject_injected_total") == 1
    assert server.sample("event_sidecar_webhook_requests_total", code="200") == 1


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        json.dumps({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"}).encode(),
        json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode(),
        json.dumps(
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {}}
        ).encode(),
        json.dumps(
            {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "request": {"uid": "u", "operation": "CREATE"},
            }
        ).encode(),
    ],
)
async def test_malformed_requests_get_http_400(server: Server, body: bytes) -> None:
    async with server.session.post(f"{server.url}/mutate", data=body) as resp:
        assert resp.status == 400
        assert "malformed AdmissionReview" in (await resp.json())["error"]
    assert server.sample("event_sidecar_webhook_errors_total", kind="malformed") == 1


async def test_an_internal_error_fails_open(tmp_path: Path, ca: trustme.CA) -> None:
    def broken(_pod: Mapping[str, Any], _settings: InjectSettings) -> list[Operation]:
        raise RuntimeError("boom")

    srv, stop, task = await start(tmp_path, ca, patcher=broken)
    try:
        answer = await srv.review(admission_review(opted_in_pod()))
        response = answer["response"]
        assert response["allowed"] is True
        assert "patch" not in response
        assert "internal error" in response["warnings"][0] and "boom" in response["warnings"][0]
        assert srv.sample("event_sidecar_webhook_errors_total", kind="internal") == 1
    finally:
        await srv.session.close()
        stop.set()
        await task


async def test_an_unappliable_patch_is_never_sent(tmp_path: Path, ca: trustme.CA) -> None:
    def wrong(_pod: Mapping[str, Any], _settings: InjectSettings) -> list[Operation]:
        return [{"op": "add", "path": "/spec/volumes/-", "value": {"name": "v"}}]

    srv, stop, task = await start(tmp_path, ca, patcher=wrong)
    try:
        response = (await srv.review(admission_review(opted_in_pod())))["response"]
        assert response["allowed"] is True and "patch" not in response
        assert srv.sample("event_sidecar_webhook_errors_total", kind="internal") == 1
    finally:
        await srv.session.close()
        stop.set()
        await task


def skip_cases() -> list[tuple[str, dict[str, Any]]]:
    pod = opted_in_pod()
    not_opted_in = copy.deepcopy(pod)
    not_opted_in["metadata"]["labels"] = {}
    mirror = copy.deepcopy(pod)
    mirror["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "abc"}
    injected = copy.deepcopy(pod)
    injected["spec"]["initContainers"] = [{"name": SIDECAR_NAME, "image": "x"}]
    scheduled = copy.deepcopy(pod)
    scheduled["spec"]["nodeName"] = "node-1"
    running = copy.deepcopy(pod)
    running["status"] = {"phase": "Running"}
    deployment = admission_review(pod)
    deployment["request"]["kind"] = {"group": "apps", "version": "v1", "kind": "Deployment"}
    return [
        ("not_opted_in", admission_review(not_opted_in)),
        ("system_namespace", admission_review(pod, namespace="kube-system")),
        ("system_namespace", admission_review(pod, namespace="kube-node-lease")),
        ("mirror_pod", admission_review(mirror)),
        ("already_injected", admission_review(injected)),
        ("not_pending", admission_review(scheduled)),
        ("not_pending", admission_review(running)),
        ("not_pod_create", admission_review(pod, operation="UPDATE")),
        ("not_pod_create", deployment),
        ("invalid_annotations", admission_review(opted_in_pod(**{PREFIX + "socket": "udp://x"}))),
        ("invalid_annotations", admission_review(opted_in_pod(**{PREFIX + "container": "nope"}))),
    ]


async def test_skips_are_allowed_without_a_patch_and_counted_by_reason(server: Server) -> None:
    cases = skip_cases()
    for reason, review in cases:
        response = (await server.review(review))["response"]
        assert response == {"uid": review["request"]["uid"], "allowed": True} or (
            reason == "invalid_annotations"
            and "patch" not in response
            and response["warnings"][0].startswith("event-sidecar: not injected:")
        ), reason
    for reason in {r for r, _ in cases}:
        expected = sum(1 for r, _ in cases if r == reason)
        assert server.sample("event_sidecar_inject_skipped_total", reason=reason) == expected
    assert server.sample("event_sidecar_inject_injected_total") == 0


async def test_health_readiness_and_metrics_are_served(server: Server) -> None:
    for path in ("/healthz", "/readyz"):
        async with server.session.get(server.url + path) as resp:
            assert resp.status == 200
    async with server.session.get(server.url + "/metrics") as resp:
        text = await resp.text()
    assert 'event_sidecar_inject_skipped_total{reason="mirror_pod"} 0.0' in text
    assert "_created" not in text


async def test_only_tls_is_spoken(server: Server) -> None:
    async with aiohttp.ClientSession() as plain:
        with pytest.raises(aiohttp.ClientError):
            async with plain.get(f"http://127.0.0.1:{server.port}/healthz") as resp:
                await resp.read()


async def test_rotated_certificates_are_served_without_dropping_connections(
    server: Server,
) -> None:
    before = await asyncio.to_thread(served_serial, server.port, server.ca)
    review = admission_review(opted_in_pod())
    await server.review(review)  # opens a keep-alive connection

    # A half-done rotation (new key, old certificate) is refused; the old pair keeps serving.
    new = issue_serving_cert(server.ca)
    replace_file(server.key_file, new.key_pem)
    for _ in range(50):
        await asyncio.sleep(0.05)
        if server.sample("event_sidecar_webhook_certificate_reloads_total", result="failure"):
            break
    assert server.sample("event_sidecar_webhook_certificate_reloads_total", result="failure") >= 1
    assert await asyncio.to_thread(served_serial, server.port, server.ca) == before
    await server.review(review)

    # The complete pair is picked up on the next check; the open connection still works.
    replace_file(server.cert_file, new.cert_pem)
    for _ in range(50):
        await asyncio.sleep(0.05)
        if server.sample("event_sidecar_webhook_certificate_reloads_total", result="success"):
            break
    assert await asyncio.to_thread(served_serial, server.port, server.ca) == new.serial
    await server.review(review)
    assert server.sample("event_sidecar_webhook_requests_total", code="200") == 3


async def test_reload_keeps_the_listening_context(tmp_path: Path, ca: trustme.CA) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    write_serving_cert(ca, cert, key)
    reloader = CertificateReloader(str(cert), str(key), WebhookMetrics(CollectorRegistry()))
    context = reloader.context
    assert reloader.reload_if_changed() is False
    write_serving_cert(ca, cert, key)
    assert reloader.reload_if_changed() is True
    assert reloader.context is context
    cert.unlink()
    assert reloader.reload_if_changed() is False  # a missing file keeps the old certificate


def test_the_app_has_the_documented_routes() -> None:
    app = create_app(InjectSettings(), WebhookMetrics(CollectorRegistry()))
    paths = {r.resource.canonical for r in app.router.routes() if r.resource is not None}
    assert paths == {"/mutate", "/metrics", "/healthz", "/readyz"}


def test_the_webhook_command_logs_json_lines_on_stderr(tmp_path: Path, ca: trustme.CA) -> None:
    """The same logging as `run`: one JSON object per line, collected beside the controller's."""
    cert_file, key_file = tmp_path / "tls.crt", tmp_path / "tls.key"
    write_serving_cert(ca, cert_file, key_file)
    command = [sys.executable, "-m", "sidecar", "webhook", f"--listen=127.0.0.1:{free_port()}"]
    command += [f"--tls-cert-file={cert_file}", f"--tls-private-key-file={key_file}"]
    with subprocess.Popen(command, stderr=subprocess.PIPE, cwd=REPO_ROOT) as process:
        try:
            assert process.stderr is not None
            first = json.loads(process.stderr.readline())
        finally:
            process.terminate()
    assert first["level"] == "info"
    assert first["msg"].startswith("webhook listening on https://127.0.0.1:")


async def test_a_reloader_that_stops_is_logged_counted_and_fails_healthz(
    server: Server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An unexpected exception (here injected into the load) must not stop reloads in silence."""

    def broken(cert_file: str, key_file: str) -> ssl.SSLContext:
        raise RuntimeError("a bug in the reload")

    monkeypatch.setattr("sidecar.inject.webhook.load_server_context", broken)
    replace_file(server.cert_file, issue_serving_cert(server.ca).cert_pem)
    name = "event_sidecar_webhook_task_failures_total"
    for _ in range(100):
        await asyncio.sleep(0.05)
        if server.sample(name, task="certificate-reloader"):
            break
    assert server.sample(name, task="certificate-reloader") == 1
    assert "task certificate-reloader stopped unexpectedly: a bug in the reload" in caplog.text
    async with server.session.get(f"{server.url}/healthz") as resp:
        assert resp.status == 503
        assert await resp.json() == {"alive": False, "checks": {"certificate-reloader": False}}
    await server.review(admission_review(opted_in_pod()))  # admissions are still answered
