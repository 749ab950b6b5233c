"""`sidecar.kube`: every way a write can fail (refusals, no answer, an API that never answers),
what goes on the wire, and configuration errors."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from sidecar.core.events.corev1 import Event, InvolvedObject
from sidecar.kube import STRATEGIC_MERGE_PATCH, KubeConfigError, KubeSettings, KubeSink, connect
from sidecar.model import ObjectTarget, RetrySettings
from sidecar.recording.steps import drive_async
from sidecar.runtime.sinks import NotFound, Refused, Send, Unreachable
from tests.conftest import Capture
from tests.controlplane import ControlPlane, token_kubeconfig
from tests.kube_support import (
    COMPONENT,
    HOST,
    _closed_port,
    _dropped,
    _event,
    _events,
    _lookups,
    _metrics,
    _recorder,
    _requests,
    _sink,
    _spec,
)

# -- failures ----------------------------------------------------------------------------------


@dataclasses.dataclass
class _Misfiling:
    """Delegates to a sink but files every Event under `namespace`, whatever its object's."""

    sink: KubeSink
    namespace: str

    def resolve(self, target: ObjectTarget) -> InvolvedObject:
        return self.sink.resolve(target)

    def create(self, event: Event) -> None:
        self.sink.create(dataclasses.replace(event, namespace=self.namespace))

    def patch(self, event: Event, patch: dict[str, Any]) -> None:
        self.sink.patch(dataclasses.replace(event, namespace=self.namespace), patch)


def test_refusals_are_final_and_counted_by_cause(
    control_plane: ControlPlane, kube_api_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube_api_client)
    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="quota-settings"))
    )
    # No controller-manager: a deleted namespace stays Terminating for good.
    terminating = f"terminating-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=terminating)))
    core.delete_namespace(terminating)
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    registry, metrics = _metrics()
    with _sink(control_plane, metrics) as sink:
        sleeps: list[float] = []  # a refusal is never retried
        recorder = _recorder(sink, metrics, sleep=sleeps.append)

        assert (
            recorder.record(_spec(ObjectTarget("ConfigMap", "x", missing))) == "namespace_missing"
        )
        assert _lookups(registry, "not_found") == 1
        assert recorder.record(_spec(ObjectTarget("ConfigMap", "x", terminating))) == (
            "namespace_terminating"
        )
        misfiling = _recorder(_Misfiling(sink, "default"), metrics)
        target = ObjectTarget("ConfigMap", "quota-settings", namespace)
        assert misfiling.record(_spec(target)) == "invalid"
        assert sleeps == []
        assert _dropped(registry, "namespace_missing") == 1
        assert _dropped(registry, "namespace_terminating") == 1
        assert _dropped(registry, "invalid") == 1
        assert _requests(registry, "create", "404") == 1
        assert _requests(registry, "create", "403") == 1
        assert _requests(registry, "create", "422") == 1

        # The sink's own errors carry the apiserver's status and message.
        event = _event(sink.resolve(target))
        assert event.namespace == namespace
        with pytest.raises(Refused) as invalid:
            sink.create(dataclasses.replace(event, namespace="default"))
        assert invalid.value.cause == "invalid"
        assert "422 Invalid" in invalid.value.detail
        assert "does not match event.namespace" in invalid.value.detail
        with pytest.raises(NotFound) as no_namespace:
            sink.create(dataclasses.replace(event, namespace=missing))
        assert no_namespace.value.cause == "namespace_missing"
        assert f'namespaces "{missing}" not found' in no_namespace.value.detail
        with pytest.raises(NotFound) as expired:
            sink.patch(event, event.repeat_patch())  # never created: the Event "expired"
        assert expired.value.cause == "event_missing"
        with pytest.raises(Refused) as closing:
            sink.create(_event(InvolvedObject("ConfigMap", "x", terminating, "v1")))
        assert closing.value.cause == "namespace_terminating"
        assert "403 Forbidden" in closing.value.detail
        assert "because it is being terminated" in closing.value.detail

        # After all that, a normal Event is written; writing it twice is a conflict.
        sink.create(event)
        with pytest.raises(Refused) as conflict:
            sink.create(event)
        assert conflict.value.cause == "conflict"
        assert "409 AlreadyExists" in conflict.value.detail
        assert recorder.record(_spec(target, "settings reloaded again")) == "create"

    assert {e["message"] for e in _events(control_plane, namespace)} == {
        "settings reloaded",
        "settings reloaded again",
    }


def test_unreachable_api_is_retried_then_counted(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    closed = token_kubeconfig(
        tmp_path / "closed.kubeconfig",
        server=f"https://127.0.0.1:{_closed_port()}",
        ca_pem=control_plane.ca_pem,
        token="unused",
    )
    registry, metrics = _metrics()
    with connect(kubeconfig=str(closed), metrics=metrics) as sink:
        with pytest.raises(Unreachable):
            sink.ping()
        with pytest.raises(Unreachable):
            sink.create(_event(InvolvedObject("Pod", "web-0", "team-a", "v1")))
        target = ObjectTarget("Pod", "web-0", "team-a", "", "")
        # resolve never raises: the reference as given (the core group's version is known).
        assert sink.resolve(target) == InvolvedObject("Pod", "web-0", "team-a", "v1")
        assert _lookups(registry, "error") == 1

        sleeps: list[float] = []
        recorder = _recorder(
            sink,
            metrics,
            retry=RetrySettings(max_tries=3, interval_seconds=0.01),
            sleep=sleeps.append,
        )
        assert recorder.record(_spec(target)) == "retries_exhausted"
        assert len(sleeps) == 2
        assert sleeps[1] == 0.01
        assert _dropped(registry, "retries_exhausted") == 1
        assert _requests(registry, "create", "unreachable") == 1 + 3

        # The same steps driven from the event loop through the daemon's sender.
        decision = recorder.prepare(_spec(target, "settings reloaded once more"))
        assert not isinstance(decision, str)
        pauses: list[float] = []

        async def pause(seconds: float) -> None:
            pauses.append(seconds)

        async def write() -> Any:
            sender = sink.sender(1)
            try:
                return await drive_async(recorder.write_steps(decision), sender, pause)
            finally:
                await sender.close()

        assert asyncio.run(write()) == "retries_exhausted"
        assert len(pauses) == 2
        assert pauses[1] == 0.01
        assert _dropped(registry, "retries_exhausted") == 2
        assert _requests(registry, "create", "unreachable") == 1 + 3 + 3


def test_an_api_that_never_answers_times_out_as_unreachable(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connections complete in the kernel; nobody ever answers
        kubeconfig = token_kubeconfig(
            tmp_path / "silent.kubeconfig",
            server=f"https://127.0.0.1:{silent.getsockname()[1]}",
            ca_pem=control_plane.ca_pem,
            token="unused",
        )
        _, metrics = _metrics()
        settings = KubeSettings(request_timeout=0.3)
        with connect(kubeconfig=str(kubeconfig), metrics=metrics, settings=settings) as sink:
            began = time.monotonic()
            with pytest.raises(Unreachable):
                sink.ping()
            assert time.monotonic() - began < 5

            async def send() -> None:  # the daemon's writes time out the same way
                sender = sink.sender(1)
                try:
                    await sender.send(Send(_event(InvolvedObject("Pod", "web-0", "ns", "v1"))))
                finally:
                    await sender.close()

            began = time.monotonic()
            with pytest.raises(Unreachable):
                asyncio.run(send())
            assert time.monotonic() - began < 5


def test_ping_answers_the_server_version(control_plane: ControlPlane) -> None:
    _, metrics = _metrics()
    with _sink(control_plane, metrics) as sink:
        version = sink.ping()
    versions = json.loads(control_plane.kubectl("version", "-o", "json").stdout)
    assert version == versions["serverVersion"]["gitVersion"]


# -- what goes on the wire ---------------------------------------------------------------------


def test_repeat_is_sent_as_a_strategic_merge_patch(capture_server: Path) -> None:
    _, metrics = _metrics()
    involved = InvolvedObject("Pod", "web-0", "team-a", "v1", "0b1c", "42")
    event = Event(
        name="web-0.17f0",
        namespace="team-a",
        involved=involved,
        type="Warning",
        reason="QuotaNearlyExhausted",
        message="m",
        first_timestamp=1_700_000_000.0,
        last_timestamp=1_700_000_060.0,
        count=2,
        component=COMPONENT,
        host=HOST,
    )
    with connect(kubeconfig=str(capture_server), metrics=metrics) as sink:
        sink.create(event)
        sink.patch(event, event.repeat_patch())
    (post, post_path, post_headers, post_body), (verb, path, headers, body) = Capture.requests
    assert (post, post_path) == ("POST", "/api/v1/namespaces/team-a/events")
    assert post_headers["content-type"] == "application/json"
    sent = json.loads(post_body)
    assert sent["involvedObject"] == involved.to_body()
    assert sent["metadata"] == {"name": "web-0.17f0", "namespace": "team-a"}
    assert (verb, path) == ("PATCH", "/api/v1/namespaces/team-a/events/web-0.17f0")
    assert headers["content-type"] == STRATEGIC_MERGE_PATCH
    assert headers["authorization"] == "Bearer t0ken"
    assert json.loads(body) == {"count": 2, "lastTimestamp": "2023-11-14T22:14:20Z", "message": "m"}
    assert post_headers["user-agent"].startswith("kube-event-sidecar/")


# -- configuration -----------------------------------------------------------------------------


def test_missing_kubeconfig_is_a_clear_error() -> None:
    _, metrics = _metrics()
    with pytest.raises(KubeConfigError) as error:
        connect(kubeconfig="/nonexistent/sidecar.kubeconfig", metrics=metrics)
    assert str(error.value) == (
        "no usable Kubernetes configuration; tried:\n"
        "  - kubeconfig /nonexistent/sidecar.kubeconfig (given explicitly): file does not exist"
    )


def test_without_any_configuration_every_attempt_is_listed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    _, metrics = _metrics()
    with pytest.raises(KubeConfigError) as error:
        connect(kubeconfig=None, metrics=metrics)
    message = str(error.value)
    assert message.startswith("no usable Kubernetes configuration; tried:\n")
    assert "  - in-cluster service account: Service host/port is not set." in message
    assert (
        f"  - kubeconfig {tmp_path / 'absent'} (from $KUBECONFIG): file does not exist" in message
    )

    garbage = tmp_path / "garbage"
    garbage.write_text("clusters: 3\n")
    with pytest.raises(KubeConfigError) as error:
        connect(kubeconfig=str(garbage), metrics=metrics)
    assert f"kubeconfig {garbage} (given explicitly): " in str(error.value)


def test_kubeconfig_from_the_environment_and_an_unknown_context(
    control_plane: ControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(control_plane.kubeconfig))
    _, metrics = _metrics()
    with connect(kubeconfig=None, metrics=metrics) as sink:
        assert sink.server == control_plane.server
        assert sink.ping().startswith("v1.")
    with pytest.raises(KubeConfigError) as error:
        connect(kubeconfig=str(control_plane.kubeconfig), context="nope", metrics=metrics)
    assert "with context 'nope'" in str(error.value)
