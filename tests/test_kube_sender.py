"""`sidecar.kube.sender.KubeSender` (the daemon's writes, aiohttp on the event loop) against a real
kube-apiserver: the same requests as `KubeSink` makes, and the same errors for the same answers,
so the Recorder's retry rules mean the same whichever writes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp.web
import pytest
import trustme
from kubernetes import client
from prometheus_client import CollectorRegistry

from sidecar.core.correlate import Correlator, CorrelatorSettings
from sidecar.core.events.corev1 import Event, EventNamer, InvolvedObject
from sidecar.core.events.eventsv1 import ModernEvent, make_modern_event
from sidecar.kube import STRATEGIC_MERGE_PATCH, KubeSink, connect
from sidecar.kube.errors import ApiContact, refusal
from sidecar.kube.transport import Answer
from sidecar.model import EventSpec, ObjectTarget, RetrySettings
from sidecar.recording.recorder import Recorder
from sidecar.runtime.metrics import Metrics
from sidecar.runtime.sinks import (
    MemorySink,
    NotFound,
    NotYetAllowed,
    Refused,
    Send,
    Sender,
    SinkError,
    Throttled,
    Unavailable,
    Unreachable,
    send_to,
)
from tests.conftest import Capture, plain_kubeconfig
from tests.controlplane import ControlPlane, token_kubeconfig
from tests.kube_support import (
    COMPONENT,
    HOST,
    RQA_GROUP,
    _create_pod,
    _create_rqa,
    _event,
    _lookups,
    _metrics,
    _requests,
    install_sidecar_rbac,
    rqa_crd,  # noqa: F401 - a fixture
)


def _modern(involved: InvolvedObject, note: str = "settings reloaded") -> ModernEvent:
    now = time.time()
    return make_modern_event(
        regarding=involved,
        related=None,
        type="Normal",
        reason="Reloaded",
        action="Reload",
        note=note,
        controller=COMPONENT,
        host=HOST,
        now=now,
        name=f"{involved.name}.{time.time_ns():x}",
    )


def _outcome(call: Any) -> tuple[str, str, str]:
    """What a write came to: ("ok", "", "") or (error class, cause, the status in its detail)."""
    try:
        call()
    except Refused as error:
        return type(error).__name__, error.cause, error.detail.split(":")[0]
    except SinkError as error:
        return type(error).__name__, "", ""
    return "ok", "", ""


async def _outcome_async(sender: Sender, request: Send) -> tuple[str, str, str]:
    try:
        await sender.send(request)
    except Refused as error:
        return type(error).__name__, error.cause, error.detail.split(":")[0]
    except SinkError as error:
        return type(error).__name__, "", ""
    return "ok", "", ""


def test_every_answer_means_what_it_means_for_the_blocking_sink(
    control_plane: ControlPlane, kube_api_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube_api_client)
    terminating = f"terminating-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=terminating)))
    core.delete_namespace(terminating)  # no controller-manager: Terminating for good
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    here = InvolvedObject("ConfigMap", "settings", namespace, "v1")

    def requests() -> list[Send]:
        """Fresh names each time: the blocking sink writes first, then the sender."""
        written = _event(here)
        modern = _modern(here)
        return [
            Send(written),  # created
            Send(written),  # 409 AlreadyExists
            Send(written, written.repeat_patch()),  # patched
            Send(_event(here), {"count": 2, "message": "m"}),  # never created: 404
            Send(_event(InvolvedObject("ConfigMap", "x", missing, "v1"))),  # no namespace
            Send(_event(InvolvedObject("ConfigMap", "x", terminating, "v1"))),  # terminating
            Send(dataclasses.replace(written, namespace="default", name="other")),  # 422
            Send(modern),  # events.k8s.io/v1: created
            Send(modern),  # 409
            Send(dataclasses.replace(modern, series_count=2), {"series": {"count": 2}}),  # 422
            Send(modern, dataclasses.replace(modern, series_count=2).series_patch()),  # patched
        ]

    registry, metrics = _metrics()
    with connect(kubeconfig=str(control_plane.kubeconfig), metrics=metrics) as sink:
        blocking = [_outcome(lambda r=r: send_to(sink, r)) for r in requests()]

        async def through_sender() -> list[tuple[str, str, str]]:
            sender = sink.sender(4)
            try:
                return [await _outcome_async(sender, r) for r in requests()]
            finally:
                await sender.close()

        sent = asyncio.run(through_sender())
    assert sent == blocking
    assert sent == [
        ("ok", "", ""),
        ("Refused", "conflict", "409 AlreadyExists"),
        ("ok", "", ""),
        ("NotFound", "event_missing", "404 NotFound"),
        ("NotFound", "namespace_missing", "404 NotFound"),
        ("Refused", "namespace_terminating", "403 Forbidden"),
        ("Refused", "invalid", "422 Invalid"),
        ("ok", "", ""),
        ("Refused", "conflict", "409 AlreadyExists"),
        ("Refused", "invalid", "422 Invalid"),
        ("ok", "", ""),
    ]
    # Both timed every request under the same verbs.
    assert _requests(registry, "create", "201") == 2 * 2
    assert _requests(registry, "patch", "200") == 2 * 2
    stored = json.loads(
        control_plane.kubectl(
            "get", "events.v1.events.k8s.io", "-n", namespace, "-o", "json"
        ).stdout
    )["items"]
    # Each writer's events.k8s.io/v1 Event, its series PATCHed to 2 (core/v1 ones have none).
    assert [e["series"]["count"] for e in stored if "series" in e] == [2, 2]


@pytest.mark.usefixtures("rqa_crd")
def test_look_ups_answer_as_the_blocking_sinks_and_fetch_objects_on_the_event_loop(
    control_plane: ControlPlane,
    kube_api_client: client.ApiClient,
    namespace: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The sidecar's own RBAC: pods and the custom resource may be read, ConfigMaps may not.
    token = install_sidecar_rbac(control_plane, kube_api_client, namespace, tmp_path)
    kubeconfig = str(control_plane.token_kubeconfig(token, tmp_path / "sidecar.kubeconfig"))
    pod_uid, _ = _create_pod(kube_api_client, namespace, "web-0")
    other_uid, _ = _create_pod(kube_api_client, namespace, "web-1")
    rqa_uid = _create_rqa(kube_api_client, namespace, "team-a")
    client.CoreV1Api(kube_api_client).create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="quota-settings"))
    )
    targets = [
        ObjectTarget("Pod", "web-0", namespace),
        ObjectTarget("Pod", "web-1", namespace),
        ObjectTarget("Pod", "gone", namespace),
        ObjectTarget("ResourceQuotaAutoscaler", "team-a", namespace, "", RQA_GROUP),
        ObjectTarget("ConfigMap", "quota-settings", namespace),
        ObjectTarget("NoSuchKind", "n-0", namespace),
    ]
    blocking_registry, metrics = _metrics()
    with connect(kubeconfig=kubeconfig, metrics=metrics) as blocking:
        expected = [blocking.resolve(target) for target in targets]
    assert [(found.uid, found.api_version) for found in expected] == [
        (pod_uid, "v1"),
        (other_uid, "v1"),
        ("", "v1"),
        (rqa_uid, f"{RQA_GROUP}/v1"),
        ("", "v1"),
        ("", ""),
    ]

    registry, metrics = _metrics()
    with connect(kubeconfig=kubeconfig, metrics=metrics) as sink:
        # What the sender hands whole to its discovery thread (the blocking client).
        whole: list[str] = []
        resolve = sink.lookup.resolve

        def resolve_on_thread(target: ObjectTarget) -> InvolvedObject:
            whole.append(target.name)
            return resolve(target)

        monkeypatch.setattr(sink.lookup, "resolve", resolve_on_thread)

        async def through_sender() -> list[InvolvedObject]:
            sender = sink.sender(4)
            try:
                return [await sender.resolve(target) for target in targets]
            finally:
                await sender.close()

        resolved = asyncio.run(through_sender())
    assert resolved == expected
    # Only a kind's first look-up (and a kind nowhere in discovery) needs discovery requests;
    # the others' GETs were made on the event loop.
    assert whole == ["web-0", "team-a", "n-0"]
    for result in ("found", "forbidden", "not_found", "unknown_kind"):
        assert _lookups(registry, result) == _lookups(blocking_registry, result), result
    assert _requests(registry, "get", "200") == 3
    assert _requests(registry, "get", "403") == _requests(registry, "get", "404") == 1


def test_a_server_with_a_certificate_from_another_ca_is_unreachable(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    stranger = trustme.CA()
    wrong_ca = token_kubeconfig(
        tmp_path / "wrong-ca.kubeconfig",
        server=control_plane.server,
        ca_pem=stranger.cert_pem.bytes(),
        token="unused",
    )
    event = _event(InvolvedObject("Pod", "web-0", "team-a", "v1"))
    _, metrics = _metrics()

    async def send() -> None:
        sender = sink.sender(1)
        try:
            with pytest.raises(Unreachable) as error:
                await sender.send(Send(event))
            assert not isinstance(error.value, Throttled)
            assert "SSL" in str(error.value) or "certificate" in str(error.value)
        finally:
            await sender.close()

    with connect(kubeconfig=str(wrong_ca), metrics=metrics) as sink:
        asyncio.run(send())


def test_requests_on_the_wire_match_the_blocking_sink(capture_server: Path) -> None:
    _, metrics = _metrics()
    involved = InvolvedObject("Pod", "web-0", "team-a", "v1", "0b1c", "42")
    event = dataclasses.replace(
        _event(involved), name="web-0.17f0", last_timestamp=1_700_000_060.0, count=2
    )
    with connect(kubeconfig=str(capture_server), metrics=metrics) as sink:
        sink.create(event)
        sink.patch(event, event.repeat_patch())
        blocking = list(Capture.requests)
        Capture.requests.clear()

        async def send() -> None:
            sender = sink.sender(2)
            try:
                await sender.send(Send(event))
                await sender.send(Send(event, event.repeat_patch()))
            finally:
                await sender.close()

        asyncio.run(send())
    sent = list(Capture.requests)
    assert (
        [(m, p) for m, p, _, _ in sent]
        == [(m, p) for m, p, _, _ in blocking]
        == [
            ("POST", "/api/v1/namespaces/team-a/events"),
            ("PATCH", "/api/v1/namespaces/team-a/events/web-0.17f0"),
        ]
    )
    for (_, _, headers, body), (_, _, theirs, their_body) in zip(sent, blocking, strict=True):
        assert json.loads(body) == json.loads(their_body)
        for name in ("content-type", "authorization", "accept"):
            assert headers[name] == theirs[name]
        assert headers["user-agent"] == theirs["user-agent"]
    assert sent[1][2]["content-type"] == STRATEGIC_MERGE_PATCH
    assert sent[0][2]["authorization"] == "Bearer t0ken"


@pytest.mark.parametrize("retry_after", ["2", None])
def test_a_429_is_throttled_with_its_retry_after(tmp_path: Path, retry_after: str | None) -> None:
    """API Priority and Fairness answers 429 with Retry-After, EventRateLimit without."""

    async def scenario() -> Throttled:
        async def refuse(request: aiohttp.web.Request) -> aiohttp.web.Response:
            headers = {"Retry-After": retry_after} if retry_after else {}
            body = {"kind": "Status", "status": "Failure", "reason": "TooManyRequests"}
            return aiohttp.web.json_response(body, status=429, headers=headers)

        app = aiohttp.web.Application()
        app.router.add_route("*", "/{tail:.*}", refuse)
        runner = aiohttp.web.AppRunner(app)
        await runner.setup()
        site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        kubeconfig = plain_kubeconfig(tmp_path / "limited.kubeconfig", f"http://127.0.0.1:{port}")
        _, metrics = _metrics()
        sender = connect(kubeconfig=str(kubeconfig), metrics=metrics).sender(1)
        try:
            with pytest.raises(Throttled) as throttled:
                await sender.send(Send(_event(InvolvedObject("Pod", "p", "ns", "v1"))))
            return throttled.value
        finally:
            await sender.close()
            await runner.cleanup()

    throttled = asyncio.run(scenario())
    assert throttled.retry_after == (2.0 if retry_after else None)
    assert "TooManyRequests" in str(throttled)


def test_a_sink_without_a_client_configuration_has_no_sender() -> None:
    _, metrics = _metrics()
    sink = KubeSink(transport=_NoTransport(), metrics=metrics)
    with pytest.raises(RuntimeError, match="without a client configuration"):
        sink.sender(1)


class _NoTransport:
    server = "https://unused"

    def request(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("not asked")

    def close(self) -> None:
        pass


def _status(code: int, reason: str, message: str, **details: Any) -> bytes:
    body = {"kind": "Status", "status": "Failure", "code": code, "reason": reason}
    return json.dumps({**body, "message": message, **details}).encode()


_SHUTTING_DOWN = _status(503, "ServiceUnavailable", "apiserver is shutting down")
_FORBIDDEN = _status(403, "Forbidden", 'events is forbidden: User "system:serviceaccount:x:y"')
_TERMINATING = _status(
    403,
    "Forbidden",
    "unable to create new content in namespace x because it is being terminated",
    details={"causes": [{"reason": "NamespaceTerminating"}]},
)


@pytest.mark.parametrize(
    ("answer", "transient", "error", "cause"),
    [
        # client-go's REST client retries a 429 or any 5xx with Retry-After (`checkWait`).
        (Answer(429, b"", 5.0), False, Throttled, ""),
        (Answer(429, b"", None), False, Throttled, ""),
        (Answer(503, _SHUTTING_DOWN, 1.0), False, Unavailable, ""),
        (Answer(500, b"etcdserver: leader changed", 2.0), False, Unavailable, ""),
        # Without Retry-After a 5xx is final, as client-go's recorder has it.
        (Answer(503, _SHUTTING_DOWN, None), False, Refused, "rejected"),
        (Answer(500, b"internal error", None), False, Refused, "rejected"),
        # A 403 soon after the API was out of reach is tried again; later it is final.
        (Answer(403, _FORBIDDEN), True, NotYetAllowed, ""),
        (Answer(403, _FORBIDDEN), False, Refused, "forbidden"),
        # A terminating namespace does not come back: final whenever.
        (Answer(403, _TERMINATING), True, Refused, "namespace_terminating"),
        (Answer(404, b"", None), True, NotFound, "namespace_missing"),
        (Answer(409, b"", None), True, Refused, "conflict"),
        (Answer(422, b"", None), True, Refused, "invalid"),
        (Answer(401, b"", None), True, Refused, "rejected"),
    ],
)
def test_which_answers_are_tried_again(
    answer: Answer, transient: bool, error: type[SinkError], cause: str
) -> None:
    """The classification rules alone (pure): see `sidecar.kube.errors`."""
    refused = refusal("create", answer, forbidden_transient=transient)
    assert type(refused) is error
    if isinstance(refused, Refused):
        assert refused.cause == cause
    else:
        assert isinstance(refused, Unreachable)  # what the Recorder tries again
    if isinstance(refused, Unavailable):
        assert refused.retry_after == answer.retry_after


def test_a_403_is_transient_only_for_the_grace_after_the_api_was_out_of_reach() -> None:
    now = [100.0]
    contact = ApiContact(30.0, clock=lambda: now[0])
    assert contact.forbidden_transient()  # right after the start
    now[0] = 129.9
    assert contact.forbidden_transient()
    now[0] = 130.0
    assert not contact.forbidden_transient()  # a lasting 403 is `forbidden`
    contact.answered(403)  # a 403 does not extend it
    contact.answered(200)
    assert not contact.forbidden_transient()
    contact.lost()  # no answer: e.g. the apiserver restarting
    now[0] = 150.0
    assert contact.forbidden_transient()
    now[0] = 160.0
    contact.answered(503)  # a 5xx counts as out of reach
    now[0] = 189.0
    assert contact.forbidden_transient()
    now[0] = 190.0
    assert not contact.forbidden_transient()


class _Answering(MemorySink):
    """Each create fails as scripted, then succeeds."""

    def __init__(self, failures: list[Exception]) -> None:
        super().__init__()
        self.failures = failures

    def create(self, event: Event) -> None:
        if self.failures:
            raise self.failures.pop(0)
        super().create(event)


def _retrying(failures: list[Exception]) -> tuple[Recorder, list[float], CollectorRegistry]:
    registry = CollectorRegistry()
    sleeps: list[float] = []
    recorder = Recorder(
        sink=_Answering(failures),
        correlator=Correlator(CorrelatorSettings(), EventNamer()),
        namer=EventNamer(),
        metrics=Metrics(registry),
        component="c",
        host="h",
        clock=lambda: 1_700_000_000.0,
        retry=RetrySettings(max_tries=4, interval_seconds=2.0),
        sleep=sleeps.append,
        jitter=lambda: 0.5,
    )
    return recorder, sleeps, registry


def _delayed(registry: CollectorRegistry, cause: str) -> float:
    value = registry.get_sample_value("event_sidecar_events_delayed_total", {"cause": cause})
    return value or 0.0


_POD = ObjectTarget("Pod", "web-0", "shop", "v1")


@pytest.mark.parametrize(
    ("failures", "outcome", "sleeps", "delayed"),
    [
        # The graceful shutdown's 503 waits its Retry-After, then the restart's refused
        # connections and first 403s are tried again: the Event is written.
        (
            [
                Unavailable("503 apiserver is shutting down", 1.0),
                Unreachable("connection refused"),
                NotYetAllowed("403 events is forbidden"),
            ],
            "create",
            [1.0, 2.0, 2.0],
            {"unavailable": 1, "unreachable": 1, "forbidden_transient": 1},
        ),
        # A Retry-After above the ceiling is capped, as a 429's is.
        ([Unavailable("503", 3600.0)], "create", [30.0], {"unavailable": 1}),
        # A 403 tried again until the tries run out is `forbidden`, not `retries_exhausted`.
        (
            [NotYetAllowed("403")] * 4,
            "forbidden",
            [1.0, 2.0, 2.0],
            {"forbidden_transient": 3},
        ),
        ([Unavailable("503", 1.0)] * 4, "retries_exhausted", [1.0] * 3, {"unavailable": 3}),
        # Past the grace the sink raises `Refused("forbidden")`: final at once.
        (
            [NotYetAllowed("403"), Refused("forbidden", "403")],
            "forbidden",
            [1.0],
            {"forbidden_transient": 1},
        ),
    ],
)
def test_the_recorder_tries_again_what_client_go_tries_again(
    failures: list[Exception], outcome: str, sleeps: list[float], delayed: dict[str, int]
) -> None:
    recorder, slept, registry = _retrying(failures)
    spec = EventSpec("r", _POD, "Normal", "Started", "started", None)
    assert recorder.record(spec) == outcome
    assert slept == sleeps
    for cause in ("unavailable", "unreachable", "forbidden_transient"):
        assert _delayed(registry, cause) == delayed.get(cause, 0), cause


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [(503, "1", Unavailable), (500, "2", Unavailable), (503, None, Refused)],
)
def test_a_5xx_with_retry_after_is_unavailable_for_both_clients(
    tmp_path: Path, status: int, retry_after: str | None, expected: type[SinkError]
) -> None:
    """A shutting-down apiserver's answer, on the wire: the sender (aiohttp) and the blocking
    sink (the client's urllib3) both read its Retry-After."""
    body = json.loads(_SHUTTING_DOWN)

    async def scenario() -> tuple[SinkError, SinkError]:
        async def refuse(request: aiohttp.web.Request) -> aiohttp.web.Response:
            headers = {"Retry-After": retry_after} if retry_after else {}
            return aiohttp.web.json_response(body, status=status, headers=headers)

        app = aiohttp.web.Application()
        app.router.add_route("*", "/{tail:.*}", refuse)
        runner = aiohttp.web.AppRunner(app)
        await runner.setup()
        site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        kubeconfig = plain_kubeconfig(tmp_path / "closing.kubeconfig", f"http://127.0.0.1:{port}")
        _, metrics = _metrics()
        sink = connect(kubeconfig=str(kubeconfig), metrics=metrics)
        sender = sink.sender(1)
        event = _event(InvolvedObject("Pod", "p", "ns", "v1"))
        try:
            with pytest.raises(SinkError) as sent:
                await sender.send(Send(event))
            with pytest.raises(SinkError) as blocking:
                await asyncio.to_thread(sink.create, event)
            return sent.value, blocking.value
        finally:
            await sender.close()
            sink.close()
            await runner.cleanup()

    for error in asyncio.run(scenario()):
        assert type(error) is expected
        assert "apiserver is shutting down" in str(error)
        if isinstance(error, Unavailable):
            assert retry_after is not None
            assert error.retry_after == float(retry_after)
        else:
            assert isinstance(error, Refused)
            assert error.cause == "rejected"
