"""`KubeSink`: Event writes (create, strategic-merge PATCH), the readiness ping, and look-ups."""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import quote

from sidecar.events import Event, InvolvedObject
from sidecar.events_v1 import ModernEvent
from sidecar.kube.errors import describe, refusal
from sidecar.kube.events_api import choose_events_api, own_namespace
from sidecar.kube.lookup import ObjectLookup
from sidecar.kube.settings import DEFAULT_SETTINGS, KubeSettings
from sidecar.kube.transport import JSON, Transport, get, send
from sidecar.metrics import Metrics
from sidecar.model import EventsApi, ObjectTarget
from sidecar.sinks import Unreachable

STRATEGIC_MERGE_PATCH: Final = "application/strategic-merge-patch+json"
#: Where each Events API lives: core/v1 and events.k8s.io/v1 take the same requests.
_CORE: Final = "/api/v1"
_MODERN: Final = "/apis/events.k8s.io/v1"


class KubeSink:
    """A `Sink` that writes core/v1 Events to the apiserver and resolves involved objects.

    Every request is timed by the transport in `api_latency{verb, result}`: verb is `create`,
    `patch`, `get` (an object's metadata), `discover` or `ping`. Nothing is logged above debug:
    the Recorder decides what is worth a warning.
    """

    def __init__(
        self,
        transport: Transport,
        metrics: Metrics,
        settings: KubeSettings = DEFAULT_SETTINGS,
    ) -> None:
        self._transport = transport
        self.settings = settings
        self.lookup = ObjectLookup(transport, metrics, settings)

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
            Unreachable: transport error or timeout (retry).
            NotFound: 404, the namespace does not exist (`namespace_missing`).
            Refused: any other status (cause: namespace_terminating, forbidden, conflict,
                invalid, rejected).
        """
        self._create(_CORE, event.namespace, event.to_body())

    def patch(self, event: Event, patch: dict[str, Any]) -> None:
        """Strategic-merge PATCH `patch` onto the Event named `event.name`.

        Raises:
            Unreachable: transport error or timeout (retry).
            NotFound: 404, the Event expired or was deleted (`event_missing`; the Recorder
                re-creates it).
            Refused: any other status.
        """
        self._patch(_CORE, event.namespace, event.name, patch)

    def create_modern(self, event: ModernEvent) -> None:
        """POST an events.k8s.io/v1 Event; the same errors as `create`."""
        self._create(_MODERN, event.namespace, event.to_body())

    def patch_modern(self, event: ModernEvent, patch: dict[str, Any]) -> None:
        """Strategic-merge PATCH an events.k8s.io/v1 Event's series; the same errors as
        `patch` (404: the Event expired, and the Recorder re-creates it)."""
        self._patch(_MODERN, event.namespace, event.name, patch)

    def _create(self, api: str, namespace: str, body: dict[str, Any]) -> None:
        path = f"{api}/namespaces/{quote(namespace, safe='')}/events"
        answer = send(self._transport, "create", "POST", path, body=body, content_type=JSON)
        if answer.status >= 300:
            raise refusal("create", answer)

    def _patch(self, api: str, namespace: str, name: str, patch: dict[str, Any]) -> None:
        path = f"{api}/namespaces/{quote(namespace, safe='')}/events/{quote(name, safe='')}"
        answer = send(
            self._transport, "patch", "PATCH", path, body=patch, content_type=STRATEGIC_MERGE_PATCH
        )
        if answer.status >= 300:
            raise refusal("patch", answer)

    def choose_events_api(self, namespace: str | None = None) -> tuple[EventsApi, str]:
        """See `sidecar.kube.events_api.choose_events_api`; `namespace` defaults to our own."""
        return choose_events_api(self._transport, namespace or own_namespace())

    def ping(self) -> str:
        """GET /version; return the server's gitVersion.

        Raises:
            Unreachable: no answer, or an answer other than 200 (e.g. 401 for a bad token).
        """
        answer = get(self._transport, "ping", "/version", JSON)
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

    def knows(self, target: ObjectTarget) -> bool:
        """See `ObjectLookup.knows`."""
        return self.lookup.knows(target)
