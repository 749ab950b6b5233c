"""The daemon's `/metrics`, `/healthz` and `/readyz`, served from a thread of the standard library.

The daemon needs three GETs and nothing more, so it serves them with `wsgiref` and
prometheus_client's own WSGI app, both loaded by prometheus_client anyway, rather than with
aiohttp's server: `--dry-run` then loads no aiohttp at all (about 11 MiB of resident set,
BENCHMARKS.md, memory), and a run against the API only aiohttp's client, for its writes. The
webhook, which serves TLS admission requests at volume, keeps aiohttp
(`sidecar.runtime.status_routes`).

Requests are answered on the server's threads, but the checks run on the daemon's event loop
(`call_soon_threadsafe`), so they see the daemon's state as its tasks do (and so does the count
of objects per state behind `/metrics`, `Metrics.census_on`), and a loop that does
not answer within `loop_timeout` fails `/healthz`: a wedged loop still fails the kubelet's
liveness probe, as with a server on the loop itself. `/healthz` also fails (503, naming it) when
a liveness check does not hold (a supervised task ended); `/readyz` names each check, for
`kubectl describe`, and leaves out those named by `?exclude=NAME` (repeatable, as on
kube-apiserver's `/readyz`): the injected readiness probe leaves out `api`, so that an apiserver
outage, which the sidecar rides out by retrying, does not take every injected pod out of its
Services, and `sources`, which flips while a pod log stream reconnects (`sources_readable`
stands for a source failing for good).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import selectors
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from socketserver import ThreadingMixIn
from typing import Any, TypeVar
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import orjson
from prometheus_client import CollectorRegistry, make_wsgi_app

_T = TypeVar("_T")

Checks = Callable[[], Mapping[str, bool]]
"""Named checks that all hold when the answer is yes."""

StartResponse = Callable[..., object]
Environ = dict[str, Any]

#: Seconds a request may take to arrive in full (a stalled client frees its thread after this).
REQUEST_TIMEOUT = 10.0


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    """No access log on stderr (the daemon's stderr is JSON lines); a stalled request times out."""

    timeout = REQUEST_TIMEOUT

    def log_message(self, format: str, *args: Any) -> None:
        """Probes and scrapes every few seconds are not news."""


class StatusServer:
    """`/metrics`, `/healthz` and `/readyz` on `host:port`, on a daemon thread."""

    def __init__(
        self,
        registry: CollectorRegistry,
        readiness: Checks,
        loop: asyncio.AbstractEventLoop,
        *,
        liveness: Checks = dict,
        reload: Callable[[], tuple[int, dict[str, Any]]] | None = None,
        loop_timeout: float = 5.0,
    ) -> None:
        self._metrics = make_wsgi_app(registry)
        self._readiness = readiness
        self._liveness = liveness
        #: `POST /-/reload` (`run --enable-reload-endpoint`): run on the loop, between blocks.
        self._reload = reload
        self._loop = loop
        self._loop_timeout = loop_timeout
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        #: A pipe whose write end `close` writes to, waking the server thread to end.
        self._wake_read = self._wake_write = -1

    def start(self, host: str, port: int) -> int:
        """Bind and serve; the port actually bound (for `port=0`).

        Raises:
            OSError: the address cannot be bound (in use, not local).
        """
        server_class = _Server6 if ":" in host else _Server
        self._server = make_server(host, port, self._app, server_class, _QuietHandler)
        self._server.timeout = 0  # `handle_request` is called only once a connection is waiting
        self._wake_read, self._wake_write = os.pipe()
        self._thread = threading.Thread(
            target=self._serve,
            args=(self._server, self._wake_read),
            name="event-sidecar-status",
            daemon=True,
        )
        self._thread.start()
        return int(self._server.server_address[1])

    @staticmethod
    def _serve(server: _Server, wake: int) -> None:
        """Accept connections until `wake` is readable (`close`).

        Not `serve_forever`: it wakes every `poll_interval` to look for a shutdown request, which
        was about half the idle daemon's CPU at 0.1 s (BENCHMARKS.md, wake-ups); this thread
        sleeps in one `select` until a connection or `close` arrives.
        """
        with selectors.DefaultSelector() as selector:
            selector.register(server, selectors.EVENT_READ)
            selector.register(wake, selectors.EVENT_READ)
            while True:
                ready = selector.select()
                if any(key.fileobj == wake for key, _ in ready):
                    return
                server.handle_request()  # accepts, then answers on a thread of its own

    def close(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            os.write(self._wake_write, b"x")
            self._thread.join()
            self._thread = None
            os.close(self._wake_read)
            os.close(self._wake_write)
        if self._server is not None:
            self._server.server_close()
            self._server = None

    def on_loop(self, call: Callable[[], _T]) -> _T | None:
        """`call()` run on the event loop; None when the loop does not answer in time.

        Called from the loop itself (a test rendering the registry there), it calls at once:
        waiting for the loop from the loop would only time out.
        """
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # the usual case: a server thread, which runs no loop
            running = None
        if running is self._loop:
            return call()
        answer: concurrent.futures.Future[_T] = concurrent.futures.Future()

        def run() -> None:
            try:
                answer.set_result(call())
            except Exception as error:  # a failing check is an unhealthy daemon, not a 500
                answer.set_exception(error)

        try:
            self._loop.call_soon_threadsafe(run)
            return answer.result(timeout=self._loop_timeout)
        except Exception:  # the loop is closed (RuntimeError), wedged (TimeoutError), or a check
            return None  # failed: not healthy, not ready

    def _app(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            body: Iterable[bytes] = self._metrics(environ, start_response)
            return body
        if path == "/healthz":
            alive = self.on_loop(lambda: dict(self._liveness()))
            if alive is not None and all(alive.values()):
                return _answer(start_response, 200, b"ok\n", "text/plain; charset=utf-8")
            failing = alive if alive is not None else {"event_loop": False}
            report = {"alive": False, "checks": failing}
            return _answer(start_response, 503, orjson.dumps(report), "application/json")
        if path == "/readyz":
            checks = self.on_loop(lambda: dict(self._readiness()))
            if checks is None:
                checks = {"event_loop": False}
            for name in parse_qs(environ.get("QUERY_STRING", "")).get("exclude", ()):
                checks.pop(name, None)
            ready = all(checks.values())
            body_bytes = orjson.dumps({"ready": ready, "checks": checks})
            return _answer(start_response, 200 if ready else 503, body_bytes, "application/json")
        if path == "/-/reload" and self._reload is not None:
            if environ.get("REQUEST_METHOD") != "POST":
                return _answer(start_response, 405, b"POST only\n", "text/plain; charset=utf-8")
            outcome = self.on_loop(self._reload)
            if outcome is None:
                outcome = (
                    503,
                    {"result": "failure", "problems": ["the event loop did not answer"]},
                )
            status, report = outcome
            return _answer(start_response, status, orjson.dumps(report), "application/json")
        return _answer(start_response, 404, b"not found\n", "text/plain; charset=utf-8")


def _answer(
    start_response: StartResponse, status: int, body: bytes, content_type: str
) -> list[bytes]:
    reason = {
        200: "OK",
        404: "Not Found",
        405: "Method Not Allowed",
        422: "Unprocessable Entity",
        503: "Service Unavailable",
    }[status]
    start_response(
        f"{status} {reason}",
        [("Content-Type", content_type), ("Content-Length", str(len(body)))],
    )
    return [body]
