"""The pod log API (`pods/log`, what `kubectl logs -f` reads) and the pod's container status.

Streamed with aiohttp (`session`) rather than through the client's blocking `call_api`: a
followed log never ends by itself, and only an asyncio stream can be cancelled cleanly at shutdown
(a thread blocked in a read would hold up the exit).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final
from urllib.parse import quote

import aiohttp
from kubernetes import client as k8s_client

from sidecar.kube.session import auth_headers, open_session
from sidecar.model import ContainerInstance, PodLogError

#: Bytes handed on per read; a block of lines, not one line.
CHUNK: Final = 64 * 1024
#: The stream, and the status reads between streams.
_CONNECTIONS: Final = 4


class PodLogClient:
    """Reads one pod's container status and container logs, with the client's credentials."""

    def __init__(self, configuration: k8s_client.Configuration, user_agent: str) -> None:
        self._configuration = configuration
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    def _headers(self) -> dict[str, str]:
        return auth_headers(self._configuration, self._user_agent)

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = open_session(self._configuration, limit=_CONNECTIONS)
        return self._session

    async def instance(self, namespace: str, pod: str, container: str) -> ContainerInstance | None:
        """The container's current instance; None while it has none (not started yet).

        Raises:
            PodLogError: the pod cannot be read.
        """
        path = f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(pod)}"
        try:
            async with self._open().get(
                path, headers=self._headers(), timeout=aiohttp.ClientTimeout(total=30)
            ) as response:
                if response.status != 200:
                    raise PodLogError(response.status, (await response.text())[:500])
                document = await response.json()
        except (aiohttp.ClientError, TimeoutError) as error:
            raise PodLogError(0, f"cannot read pod {namespace}/{pod}: {error}") from error
        for status in document.get("status", {}).get("containerStatuses") or []:
            if status.get("name") != container:
                continue
            # A node that reports no containerID (kwok) still says when the instance started.
            started = (status.get("state") or {}).get("running", {}).get("startedAt")
            identity = status.get("containerID") or (f"started:{started}" if started else "")
            if identity:
                return ContainerInstance(identity, int(status.get("restartCount", 0)))
        return None

    async def stream(
        self,
        namespace: str,
        pod: str,
        container: str,
        *,
        since: str | None,
        previous: bool = False,
        follow: bool = True,
    ) -> AsyncIterator[bytes]:
        """Chunks of the log with kubelet timestamps, until the stream ends.

        Raises:
            PodLogError: refused (`status`), or no answer / connection lost (status 0).
        """
        params = {"container": container, "timestamps": "true"}
        if follow:
            params["follow"] = "true"
        if previous:
            params["previous"] = "true"
        if since:
            params["sinceTime"] = since
        path = f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(pod)}/log"
        # No total timeout: a followed stream stays open; a silent dead peer is found by the
        # socket read timeout below only when the controller is silent too, so it is long.
        timeout = aiohttp.ClientTimeout(total=None, connect=30, sock_read=None)
        try:
            async with self._open().get(
                path, params=params, headers=self._headers(), timeout=timeout
            ) as response:
                if response.status == 204:
                    return  # no log yet: the pod is not on a node (the apiserver's answer)
                if response.status != 200:
                    raise PodLogError(response.status, (await response.text())[:500])
                async for chunk in response.content.iter_any():
                    yield chunk
        except (aiohttp.ClientError, TimeoutError) as error:
            raise PodLogError(0, f"log stream of {namespace}/{pod}/{container}: {error}") from error

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
