"""`KubeSender`: Event writes (create, strategic-merge PATCH) and object look-ups from the event
loop, over aiohttp.

The daemon's poster keeps several writes and look-ups in flight; here each is a coroutine on one
kept-alive connection of a small pool, with no thread and no hand-off between threads per
request. A write's body is the Event's own dict serialized once with orjson. Answers mean what
they mean for `KubeSink` (`errors.refusal`): the Recorder's retry rules are the same whichever
one writes. A look-up is `ObjectLookup.steps` (one cache, one set of answers for both): only its
object's GET is made here; one whose kind needs a discovery request (the first of each kind, a
kind not found) is made whole on a thread, through the blocking client.
"""

from __future__ import annotations

import aiohttp
import orjson
from kubernetes import client as k8s_client

from sidecar.core.events.corev1 import InvolvedObject
from sidecar.kube.discovery import NotDiscovered
from sidecar.kube.errors import ApiContact, refusal
from sidecar.kube.lookup import METADATA_ONLY, Fetch, ObjectLookup, begin, conclude
from sidecar.kube.routes import route
from sidecar.kube.session import auth_headers, open_session, timed_request
from sidecar.kube.settings import KubeSettings
from sidecar.kube.transport import JSON, Answer
from sidecar.model import ObjectTarget
from sidecar.runtime.metrics import Metrics
from sidecar.runtime.sinks import Send, Unreachable
from sidecar.runtime.threads import WorkerThread


class KubeSender:
    """A `Sender` to the apiserver: `send` raises what `KubeSink`'s writes raise; `resolve` is
    `lookup`'s, on `connections` connections of its own besides the writes' `connections`."""

    def __init__(
        self,
        configuration: k8s_client.Configuration,
        user_agent: str,
        metrics: Metrics,
        settings: KubeSettings,
        connections: int,
        *,
        lookup: ObjectLookup,
        contact: ApiContact | None = None,
    ) -> None:
        self._configuration = configuration
        self._user_agent = user_agent
        self._metrics = metrics
        self._timeout = aiohttp.ClientTimeout(total=settings.request_timeout)
        self._connections = connections
        self._lookup = lookup
        #: When the API was last out of reach (the sink's, shared with its ping).
        self._contact = contact or ApiContact(settings.forbidden_grace)
        #: Opened on the first request: a session belongs to the loop it was made on.
        self._session: aiohttp.ClientSession | None = None
        #: Look-ups that need discovery, on the blocking client (started when first needed).
        self._discovering: WorkerThread | None = None

    async def send(self, request: Send) -> None:
        """Raises:
        Unreachable: no answer (`Throttled` for a 429, with its Retry-After; `Unavailable` for
            a 5xx with Retry-After; `NotYetAllowed` for a 403 soon after the API was out of
            reach: see `sidecar.kube.errors`).
        NotFound: 404 (a create: the namespace is missing; a PATCH: the Event expired).
        Refused: any other error answer."""
        verb, method, path, content_type, body = route(request)
        answer = await self._request(
            verb, method, path, JSON, content_type=content_type, body=orjson.dumps(body)
        )
        if answer.status >= 300:
            transient = self._contact.forbidden_transient()
            raise refusal(verb, answer, forbidden_transient=transient)

    async def resolve(self, target: ObjectTarget) -> InvolvedObject:
        """`ObjectLookup.resolve` from the event loop (see the module docstring). Never raises."""
        lookup = self._lookup
        known = lookup.known(target)
        if known is not None:
            return known
        try:
            steps = lookup.steps(target, discover=False)
            fetch = begin(steps)
        except NotDiscovered:
            if self._discovering is None:
                self._discovering = WorkerThread("event-sidecar-discovery")
            return await self._discovering.call(lambda: lookup.resolve(target))
        if not isinstance(fetch, Fetch):
            return fetch
        try:
            answer = await self._request("get", "GET", fetch.path, METADATA_ONLY)
        except Unreachable as error:
            return conclude(steps, error)
        return conclude(steps, answer)

    async def _request(
        self,
        verb: str,
        method: str,
        path: str,
        accept: str,
        *,
        content_type: str | None = None,
        body: bytes | None = None,
    ) -> Answer:
        headers = auth_headers(self._configuration, self._user_agent)
        headers["Accept"] = accept
        if content_type is not None:
            headers["Content-Type"] = content_type
        if self._session is None:
            # Writes and look-ups are each `connections` at most in flight (the poster's
            # bounds): a connection for each, so neither waits for the other's.
            self._session = open_session(self._configuration, limit=2 * self._connections)
        try:
            answer = await timed_request(
                self._session,
                self._metrics,
                verb,
                method,
                path,
                headers=headers,
                body=body,
                timeout=self._timeout,
            )
        except Unreachable:
            self._contact.lost()
            raise
        self._contact.answered(answer.status)
        return answer

    async def close(self) -> None:
        """Close the connections (and the discovery thread)."""
        if self._discovering is not None:
            self._discovering.close()
            self._discovering = None
        if self._session is not None:
            await self._session.close()
            self._session = None
