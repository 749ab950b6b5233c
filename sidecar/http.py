"""The metrics and health server: `/metrics`, `/healthz`, `/readyz` (aiohttp, thin).

The handlers only adapt: the registry is passed in and rendered by prometheus_client, readiness
is a callable the server provides. `/healthz` answers as long as the event loop runs (a wedged
loop fails the kubelet's liveness probe) and the liveness checks hold (the daemon's supervised
tasks, the webhook's certificate reloader, are alive); `/readyz` says which check fails, for
`kubectl describe`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

Checks = Callable[[], Mapping[str, bool]]
"""Named checks that all hold when the answer is yes."""
Readiness = Checks


def _no_checks() -> Mapping[str, bool]:
    return {}


def add_probe_routes(
    app: web.Application,
    registry: CollectorRegistry,
    readiness: Checks,
    liveness: Checks = _no_checks,
) -> None:
    """Add `/metrics`, `/healthz` and `/readyz` to `app` (the daemon's server and the webhook's)."""

    async def metrics(_: web.Request) -> web.Response:
        """The registry in the Prometheus text format."""
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

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

    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)


def make_app(
    registry: CollectorRegistry, readiness: Readiness, liveness: Checks = _no_checks
) -> web.Application:
    """The daemon's application: just the three endpoints."""
    app = web.Application()
    add_probe_routes(app, registry, readiness, liveness)
    return app


async def start_server(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Listen on `host:port`; the caller stops it with `runner.cleanup()`.

    Raises:
        OSError: the address cannot be bound (in use, not local).
    """
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The port actually bound (for `port=0` in tests)."""
    for address in runner.addresses:
        if isinstance(address, tuple):
            return int(address[1])
    raise RuntimeError("the server is not listening on TCP")
