"""`KubeSink`: Event writes (create, strategic-merge PATCH), the readiness ping, and look-ups;
its `sender` makes the same writes and look-ups from the event loop."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kubernetes import client as k8s_client

from sidecar.core.events.corev1 import Event, InvolvedObject
from sidecar.core.events.eventsv1 import ModernEvent
from sidecar.kube.errors import ApiContact, describe, refusal
from sidecar.kube.events_api import choose_events_api, own_namespace
from sidecar.kube.lookup import ObjectLookup
from sidecar.kube.routes import route
from sidecar.kube.settings import DEFAULT_SETTINGS, KubeSettings
from sidecar.kube.transport import JSON, Transport, get, send
from sidecar.model import EventsApi, ObjectTarget
from sidecar.runtime.metrics import Metrics
from sidecar.runtime.sinks import Send, Unreachable

if TYPE_CHECKING:
    # Imported when used: it needs aiohttp's client (about 10 MiB resident), which only the
    # daemon's writes and `--pod-log` pay for; `replay --kubeconfig` writes without it.
    from sidecar.kube.sender import KubeSender


class KubeSink:
    """A `Sink` that writes core/v1 Events to the apiserver and resolves involved objects.

    Every request is timed by the transport in `api_latency{verb, result}`: verb is `create`,
    `patch`, `get` (an object's metadata), `discover` or `ping`. Nothing is logged above debug:
    the Recorder decides what is worth a warning. `contact` (shared with its `sender`) notes
    when the API was last out of reach, so that a 403 soon after is tried again (see
    `sidecar.kube.errors`).
    """

    def __init__(
        self,
        transport: Transport,
        metrics: Metrics,
        settings: KubeSettings = DEFAULT_SETTINGS,
        *,
        configuration: k8s_client.Configuration | None = None,
        user_agent: str = "",
    ) -> None:
        self._transport = transport
        self._metrics = metrics
        self.settings = settings
        self._configuration = configuration
        self._user_agent = user_agent
        self.contact = ApiContact(settings.forbidden_grace)
        self.lookup = ObjectLookup(transport, metrics, settings, contact=self.contact)

    @property
    def server(self) -> str:
        """The API server's URL."""
        return self._transport.server

    def close(self) -> None:
        """Close the transport's connections."""
        self._transport.close()

    def __enter__(self) -> KubeSink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def create(self, event: Event) -> None:
        """POST the Event to `/api/v1/namespaces/<event namespace>/events`.

        Raises:
            Unreachable: transport error or timeout (retry); `Throttled` for a 429,
                `Unavailable` for a 5xx with Retry-After, `NotYetAllowed` for a 403 soon after
                the API was out of reach (see `sidecar.kube.errors`).
            NotFound: 404, the namespace does not exist (`namespace_missing`).
            Refused: any other status (cause: namespace_terminating, forbidden, conflict,
                invalid, rejected).
        """
        self._write(Send(event))

    def patch(self, event: Event, patch: dict[str, Any]) -> None:
        """Strategic-merge PATCH `patch` onto the Event named `event.name`.

        Raises:
            Unreachable: transport error or timeout (retry).
            NotFound: 404, the Event expired or was deleted (`event_missing`; the Recorder
                re-creates it).
            Refused: any other status.
        """
        self._write(Send(event, patch))

    def create_modern(self, event: ModernEvent) -> None:
        """POST an events.k8s.io/v1 Event; the same errors as `create`."""
        self._write(Send(event))

    def patch_modern(self, event: ModernEvent, patch: dict[str, Any]) -> None:
        """Strategic-merge PATCH an events.k8s.io/v1 Event's series; the same errors as
        `patch` (404: the Event expired, and the Recorder re-creates it)."""
        self._write(Send(event, patch))

    def _write(self, request: Send) -> None:
        verb, method, path, content_type, body = route(request)
        try:
            answer = send(self._transport, verb, method, path, body=body, content_type=content_type)
        except Unreachable:
            self.contact.lost()
            raise
        self.contact.answered(answer.status)
        if answer.status >= 300:
            raise refusal(verb, answer, forbidden_transient=self.contact.forbidden_transient())

    def sender(self, connections: int) -> KubeSender:
        """The same writes and look-ups from the event loop (`KubeSender`, sharing this sink's
        look-up cache), up to `connections` of each in flight: what the daemon's poster writes
        and resolves through."""
        if self._configuration is None:
            raise RuntimeError("this KubeSink was built without a client configuration")
        from sidecar.kube.sender import KubeSender  # noqa: PLC0415 - see the import above

        return KubeSender(
            self._configuration,
            self._user_agent,
            self._metrics,
            self.settings,
            connections,
            lookup=self.lookup,
            contact=self.contact,
        )

    def choose_events_api(self, namespace: str | None = None) -> tuple[EventsApi, str]:
        """See `sidecar.kube.events_api.choose_events_api`; `namespace` defaults to our own."""
        return choose_events_api(self._transport, namespace or own_namespace())

    def ping(self) -> str:
        """GET /version; return the server's gitVersion.

        Raises:
            Unreachable: no answer, or an answer other than 200 (e.g. 401 for a bad token).
        """
        try:
            answer = get(self._transport, "ping", "/version", JSON)
        except Unreachable:
            self.contact.lost()
            raise
        self.contact.answered(answer.status)
        if answer.status != 200:
            raise Unreachable(f"GET /version answered {describe(answer)}")
        try:
            return str(answer.json().get("gitVersion", ""))
        except (ValueError, AttributeError) as error:
            raise Unreachable(
                f"GET /version answered something that is not JSON: {error}"
            ) from error

    def resolve(self, target: ObjectTarget) -> InvolvedObject:
        """See `ObjectLookup.resolve`: never raises."""
        return self.lookup.resolve(target)

    def known(self, target: ObjectTarget) -> InvolvedObject | None:
        """See `ObjectLookup.known`."""
        return self.lookup.known(target)
