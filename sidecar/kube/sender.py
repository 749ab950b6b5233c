"""`KubeSender`: Event writes (create, strategic-merge PATCH) from the event loop, over aiohttp.

The daemon's poster keeps several writes in flight; here each is a coroutine on one kept-alive
connection of a small pool, with no thread and no hand-off between threads per write. The body
is the Event's own dict serialized once with orjson. Answers mean what they mean for `KubeSink`
(`errors.refusal`): the Recorder's retry rules are the same whichever one writes.
"""

from __future__ import annotations

import aiohttp
import orjson
from kubernetes import client as k8s_client

from sidecar.kube.errors import refusal
from sidecar.kube.session import auth_headers, open_session, timed_request
from sidecar.kube.settings import KubeSettings
from sidecar.kube.sink import route
from sidecar.kube.transport import JSON
from sidecar.metrics import Metrics
from sidecar.sinks import Send


class KubeSender:
    """A `Sender` to the apiserver: `send` raises what `KubeSink`'s writes raise."""

    def __init__(
        self,
        configuration: k8s_client.Configuration,
        user_agent: str,
        metrics: Metrics,
        settings: KubeSettings,
        connections: int,
    ) -> None:
        self._configuration = configuration
        self._user_agent = user_agent
        self._metrics = metrics
        self._timeout = aiohttp.ClientTimeout(total=settings.request_timeout)
        self._connections = connections
        #: Opened on the first write: a session belongs to the loop it was made on.
        self._session: aiohttp.ClientSession | None = None

    async def send(self, request: Send) -> None:
        """Raises:
        Unreachable: no answer (`Throttled` for a 429, with its Retry-After).
        NotFound: 404 (a create: the namespace is missing; a PATCH: the Event expired).
        Refused: any other error answer."""
        verb, method, path, content_type, body = route(request)
        headers = auth_headers(self._configuration, self._user_agent)
        headers["Accept"] = JSON
        headers["Content-Type"] = content_type
        if self._session is None:
            self._session = open_session(self._configuration, limit=self._connections)
        answer = await timed_request(
            self._session,
            self._metrics,
            verb,
            method,
            path,
            headers=headers,
            body=orjson.dumps(body),
            timeout=self._timeout,
        )
        if answer.status >= 300:
            raise refusal(verb, answer)

    async def close(self) -> None:
        """Close the connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None
