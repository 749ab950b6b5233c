"""The webhook's `/metrics`, `/healthz` and `/readyz` routes (aiohttp, thin).

The daemon serves the same three paths without aiohttp's server (`sidecar.runtime.status_server`),
to keep its memory down; the webhook already runs an aiohttp server for admission, so its probes are
routes on it.

`/metrics` is prometheus_client's own aiohttp handler (content negotiation, `name[]` filters and
compression as its other servers do them); the probes only adapt: readiness
is a callable the server provides. `/healthz` answers as long as the event loop runs (a wedged
loop fails the kubelet's liveness probe) and the liveness checks hold (the webhook's certificate
reloader is alive); `/readyz` says which check fails, for
`kubectl describe`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler

Checks = Callable[[], Mapping[str, bool]]
"""Named checks that all hold when the answer is yes."""


def _no_checks() -> Mapping[str, bool]:
    return {}


def add_probe_routes(
    app: web.Application,
    registry: CollectorRegistry,
    readiness: Checks,
    liveness: Checks = _no_checks,
) -> None:
    """Add `/metrics`, `/healthz` and `/readyz` to `app` (the webhook's server)."""

    async def healthz(_: web.Request) -> web.Response:
        """Alive: the event loop answers and every liveness check holds (else 503 naming it)."""
        checks = dict(liveness())
        if all(checks.values()):
            return web.Response(text="ok\n")
        return web.json_response({"alive": False, "checks": checks}, status=503)

    async def readyz(_: web.Request) -> web.Response:
        """Ready: every check holds; the body names each check."""
        checks = dict(readiness())
        ready = all(checks.values())
        return web.json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)

    app.router.add_get("/metrics", make_aiohttp_handler(registry))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
