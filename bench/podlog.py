"""A pod log API on loopback, for the cost of following a pod's log (bench/wakeups.py).

    server = PodLogServer("bench", "app-0", "app").start()
    server.append(b"a line\\n")   # from any thread: followed streams get it as one chunk

It answers what `event-sidecar run --pod-log` and `kubectl logs -f` ask: the discovery
documents kubectl reads first (`/api`, `/apis`, `/api/v1`), the Pod (its container's status),
and `GET .../pods/NAME/log` with `follow`, `timestamps` and `sinceTime` as the kubelet serves
them through the apiserver: each `append` is one HTTP chunk to every followed stream, each line
prefixed with its RFC 3339 time when `timestamps=true`.

Why not kwok behind the real apiserver (tests/faults/test_pod_log_kwok.py): there kwok's
generated log and the apiserver's proxying cost CPU on the same two shared cores, and each
follower's bytes pass through two more processes whose load varies from run to run; here both
followers read the very same chunks from one cheap server in the benchmark's own process (its
CPU is not counted for either), so what differs is only the reader.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

CONTAINER_ID = "containerd://bench"
STARTED_AT = "2026-01-01T00:00:00Z"


def _stamp() -> bytes:
    """The kubelet's timestamp: RFC 3339 with nanoseconds, in UTC."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.").encode() + b"%09dZ" % (now.microsecond * 1000)


class PodLogServer:
    """One pod with one running container whose log grows by `append`."""

    def __init__(self, namespace: str, pod: str, container: str) -> None:
        self.namespace = namespace
        self.pod = pod
        self.container = container
        #: (stamp, line) of everything appended so far.
        self.lines: list[tuple[bytes, bytes]] = []
        self._followers: list[tuple[asyncio.Queue[list[tuple[bytes, bytes]]], bool]] = []
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0
        #: The paths asked for, in order (kubectl's discovery, the daemon's reads).
        self.requests: list[str] = []

    def start(self) -> PodLogServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)
        return self

    async def _serve(self) -> None:
        app = web.Application()
        base = f"/api/v1/namespaces/{self.namespace}/pods/{self.pod}"
        app.router.add_get("/api", self._api)
        app.router.add_get("/apis", self._apis)
        app.router.add_get("/api/v1", self._resources)
        app.router.add_get(base, self._pod)
        app.router.add_get(base + "/log", self._log)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = int(self._runner.addresses[0][1])

    def stop(self) -> None:
        async def close() -> None:
            for queue, _ in self._followers:
                queue.put_nowait([])
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def append(self, data: bytes) -> None:
        """The controller wrote `data` (whole lines): one chunk to each followed stream."""
        stamp = _stamp()
        lines = [(stamp, line) for line in data.splitlines(keepends=True)]
        self._loop.call_soon_threadsafe(self._deliver, lines)

    def _deliver(self, lines: list[tuple[bytes, bytes]]) -> None:
        self.lines.extend(lines)
        for queue, _ in self._followers:
            queue.put_nowait(lines)

    def kubeconfig(self, path: Path) -> Path:
        """A kubeconfig for this server (plain HTTP on loopback, a token that is not checked)."""
        path.write_text(
            f"""apiVersion: v1
kind: Config
clusters:
- name: bench
  cluster: {{server: "http://127.0.0.1:{self.port}"}}
users:
- name: bench
  user: {{token: bench}}
contexts:
- name: bench
  context: {{cluster: bench, user: bench, namespace: {self.namespace}}}
current-context: bench
"""
        )
        return path

    # -- the API ----------------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        return web.json_response(
            {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{self.port}"}
                ],
            }
        )

    async def _apis(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})

    async def _resources(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        pods: dict[str, Any] = {
            "name": "pods",
            "singularName": "pod",
            "namespaced": True,
            "kind": "Pod",
            "verbs": ["get", "list"],
            "shortNames": ["po"],
        }
        log = {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod"}
        return web.json_response(
            {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": "v1",
                "resources": [pods, {**log, "verbs": ["get"]}],
            }
        )

    async def _pod(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        status = {
            "name": self.container,
            "containerID": CONTAINER_ID,
            "image": "bench",
            "imageID": "",
            "ready": True,
            "restartCount": 0,
            "started": True,
            "state": {"running": {"startedAt": STARTED_AT}},
        }
        return web.json_response(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": self.pod,
                    "namespace": self.namespace,
                    "uid": "00000000-0000-0000-0000-000000000001",
                    "creationTimestamp": STARTED_AT,
                },
                "spec": {"containers": [{"name": self.container, "image": "bench"}]},
                "status": {"phase": "Running", "containerStatuses": [status]},
            }
        )

    async def _log(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path_qs)
        query = request.query
        stamped = query.get("timestamps") == "true"
        since = query.get("sinceTime", "").encode()

        def body(lines: list[tuple[bytes, bytes]]) -> bytes:
            return b"".join(
                stamp + b" " + line if stamped else line
                for stamp, line in lines
                if not since or stamp >= since
            )

        if query.get("follow") != "true":
            return web.Response(body=body(self.lines))
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        queue: asyncio.Queue[list[tuple[bytes, bytes]]] = asyncio.Queue()
        follower = (queue, stamped)
        self._followers.append(follower)
        try:
            if self.lines:
                await response.write(body(self.lines))
            while lines := await queue.get():
                await response.write(body(lines))
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._followers.remove(follower)
        return response
