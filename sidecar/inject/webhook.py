"""`event-sidecar webhook`: the mutating admission webhook, a thin aiohttp server over TLS.

All decisions are in `sidecar.inject.admission`; this module only speaks HTTP, counts, and keeps
the serving certificate fresh. Certificates are rotated by cert-manager or the kubelet's Secret
refresh while the webhook runs, so :class:`CertificateReloader` checks the files' stat at most
once per interval and, when they changed, loads them into a *new* `SSLContext`; the listening
context's SNI callback hands each new handshake the newest one. Connections already open keep
theirs, and a half-written pair (certificate and key not matching yet) is simply retried on the
next tick while the previous certificate goes on serving.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram

from sidecar.inject.admission import (
    SKIP_REASONS,
    MalformedReview,
    Patcher,
    Verdict,
    build_response,
    decide,
    read_request,
)
from sidecar.inject.patch import build_patch
from sidecar.inject.settings import InjectSettings
from sidecar.runtime.exposition import show_created_series
from sidecar.runtime.status_routes import Checks, add_probe_routes
from sidecar.runtime.tasks import Supervisor

log = logging.getLogger(__name__)

MUTATE_PATH: Final = "/mutate"
MAX_BODY_BYTES: Final = 8 * 1024 * 1024
"""An AdmissionReview carries the whole pod (etcd allows ~1.5 MiB objects) twice at most."""
RELOADER_TASK: Final = "certificate-reloader"
#: Seconds the background tasks may take to stop once cancelled (they only sleep and stat).
_STOP_GRACE: Final = 5.0
_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


@dataclass(frozen=True)
class WebhookSettings:
    """How the webhook server listens and where its certificate is."""

    cert_file: str
    key_file: str
    host: str = "127.0.0.1"
    """Loopback by default; in a cluster pass `--listen 0.0.0.0:8443` so the Service reaches it."""
    port: int = 8443
    reload_interval: float = 1.0
    """Seconds between certificate file checks: cheap (two `stat` calls) and well below any
    rotation's overlap window."""
    inject: InjectSettings = field(default_factory=InjectSettings)


class WebhookMetrics:
    """The `event_sidecar_webhook_` and `event_sidecar_inject_` metrics on a given registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "event_sidecar_webhook_requests",
            "Admission requests received, by HTTP status answered.",
            ["code"],
            registry=registry,
        )
        self.duration = Histogram(
            "event_sidecar_webhook_request_duration_seconds",
            "Time to answer an admission request.",
            buckets=_BUCKETS,
            registry=registry,
        )
        self.injected = Counter(
            "event_sidecar_inject_injected", "Pods given the sidecar.", registry=registry
        )
        self.skipped = Counter(
            "event_sidecar_inject_skipped",
            "Pods admitted without the sidecar, by reason.",
            ["reason"],
            registry=registry,
        )
        self.errors = Counter(
            "event_sidecar_webhook_errors",
            "Requests that failed: malformed (HTTP 400) or internal (admitted, fail open).",
            ["kind"],
            registry=registry,
        )
        self.cert_reloads = Counter(
            "event_sidecar_webhook_certificate_reloads",
            "Certificate reload attempts after the files changed, by result.",
            ["result"],
            registry=registry,
        )
        self.task_failures = Counter(
            "event_sidecar_webhook_task_failures",
            "Background tasks (the certificate reloader) that stopped unexpectedly; /healthz "
            "then fails, so the kubelet restarts the webhook.",
            ["task"],
            registry=registry,
        )
        self.task_failures.labels(RELOADER_TASK)
        for reason in SKIP_REASONS:  # dashboards see zeros, not gaps
            self.skipped.labels(reason)
        for kind in ("malformed", "internal"):
            self.errors.labels(kind)

    def count(self, verdict: Verdict) -> None:
        """Count one answered review by its outcome."""
        if verdict.outcome == "injected":
            self.injected.inc()
        elif verdict.outcome == "skipped":
            self.skipped.labels(verdict.reason).inc()
        else:
            self.errors.labels("internal").inc()


def load_server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A TLS 1.2+ server context serving `cert_file` (chain) with `key_file`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context


class CertificateReloader:
    """Serves the newest loadable certificate, without dropping open connections."""

    def __init__(
        self,
        cert_file: str,
        key_file: str,
        metrics: WebhookMetrics,
    ) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self._metrics = metrics
        self._stamp = self._read_stamp()
        self._failed_stamp: tuple[int, ...] | None = None
        self.context = load_server_context(cert_file, key_file)
        """The listening context; its SNI callback (run for every handshake, with or without
        SNI) switches the connection to the current context."""
        self.context.sni_callback = self._select
        self._current = self.context

    def _select(self, conn: ssl.SSLObject, _name: str | None, _ctx: ssl.SSLContext) -> None:
        conn.context = self._current

    def _read_stamp(self) -> tuple[int, ...]:
        """What changes when a file is rewritten or its Secret symlink is swapped."""
        stamp: list[int] = []
        for path in (self.cert_file, self.key_file):
            st = Path(path).stat()
            stamp += [st.st_mtime_ns, st.st_ino, st.st_size]
        return tuple(stamp)

    def reload_if_changed(self) -> bool:
        """Load the files if they changed since the last good load; True when a new certificate
        now serves. A failed load keeps the old one and is retried on the next call."""
        stamp: tuple[int, ...] | None = None
        try:
            stamp = self._read_stamp()
            if stamp == self._stamp:
                return False
            self._current = load_server_context(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as error:
            self._metrics.cert_reloads.labels("failure").inc()
            if stamp != self._failed_stamp:
                log.warning("certificate reload failed (still serving the old one): %s", error)
                self._failed_stamp = stamp
            return False
        self._stamp = stamp
        self._metrics.cert_reloads.labels("success").inc()
        log.info("serving the new certificate from %s", self.cert_file)
        return True

    async def watch(self, interval: float) -> None:
        """Check the files every `interval` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval)
            self.reload_if_changed()


def _alive() -> dict[str, bool]:
    return {}


def create_app(
    settings: InjectSettings,
    metrics: WebhookMetrics,
    patcher: Patcher = build_patch,
    liveness: Checks = _alive,
) -> web.Application:
    """The aiohttp application: `POST /mutate`, `/metrics`, `/healthz` and `/readyz`.

    `/healthz` fails when a `liveness` check does (a background task stopped).
    """

    async def mutate(request: web.Request) -> web.Response:
        started = time.perf_counter()
        try:
            review = read_request(orjson.loads(await request.read()))
        except (MalformedReview, ValueError) as error:  # orjson.JSONDecodeError is a ValueError
            metrics.errors.labels("malformed").inc()
            metrics.requests.labels("400").inc()
            return web.json_response({"error": f"malformed AdmissionReview: {error}"}, status=400)
        verdict = decide(review, settings, patcher)
        metrics.count(verdict)
        if verdict.outcome == "error":
            log.error("admission of %s failed open: %s", review.get("name"), verdict.warnings)
        metrics.requests.labels("200").inc()
        metrics.duration.observe(time.perf_counter() - started)
        return web.json_response(build_response(verdict))

    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.router.add_post(MUTATE_PATH, mutate)
    add_probe_routes(app, metrics.registry, readiness=_alive, liveness=liveness)
    return app


async def serve(
    settings: WebhookSettings,
    registry: CollectorRegistry,
    stop: asyncio.Event | None = None,
    patcher: Patcher = build_patch,
) -> None:
    """Run the webhook until `stop` is set (without one: until SIGTERM or SIGINT), then drain.

    Open requests finish before it returns, so a rolling update of the webhook's Deployment does
    not cut the apiserver off mid-call.
    """
    show_created_series(False)  # a lean /metrics, as the daemon's: no `_created` series
    metrics = WebhookMetrics(registry)
    reloader = CertificateReloader(settings.cert_file, settings.key_file, metrics)
    # As in the daemon, a background task that ends is logged with its reason and counted; the
    # webhook keeps answering admissions with the certificate it has, and its `/healthz` fails,
    # so the kubelet restarts it rather than letting it serve an expiring certificate in silence.
    tasks = Supervisor(on_failure=lambda name: metrics.task_failures.labels(name).inc(), logger=log)
    app = create_app(settings.inject, metrics, patcher, tasks.alive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, ssl_context=reloader.context)
    await site.start()
    log.info("webhook listening on https://%s:%d%s", settings.host, settings.port, MUTATE_PATH)
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    tasks.spawn(RELOADER_TASK, reloader.watch(settings.reload_interval))
    try:
        await stop.wait()
    finally:
        tasks.stopping()
        await tasks.cancel(deadline=time.monotonic() + _STOP_GRACE)
        await runner.cleanup()
