"""Where each Event write goes: its verb, method, path, content type and body.

One function for the blocking sink (`api_sink`) and the event loop's sender (`sender`), so both
write to the same place in the same way.
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import quote

from sidecar.core.events.corev1 import Event
from sidecar.kube.transport import JSON
from sidecar.runtime.sinks import Send

STRATEGIC_MERGE_PATCH: Final = "application/strategic-merge-patch+json"
#: Where each Events API lives: core/v1 and events.k8s.io/v1 take the same requests.
_CORE: Final = "/api/v1"
_MODERN: Final = "/apis/events.k8s.io/v1"


def route(request: Send) -> tuple[str, str, str, str, dict[str, Any]]:
    """(verb for `api_latency`, HTTP method, path, content type, body) of a write."""
    event = request.event
    api = _CORE if type(event) is Event else _MODERN
    events = f"{api}/namespaces/{quote(event.namespace, safe='')}/events"
    if request.patch is None:
        return "create", "POST", events, JSON, event.to_body()
    name = quote(event.name, safe="")
    return "patch", "PATCH", f"{events}/{name}", STRATEGIC_MERGE_PATCH, request.patch
