"""The daemon's status server: real requests, a real event loop on its own thread."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping

import orjson
import pytest
from prometheus_client import CollectorRegistry, Counter

from sidecar.runtime.status_server import StatusServer


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop running on a thread, as the daemon's runs beside the server's threads."""
    running = asyncio.new_event_loop()
    thread = threading.Thread(target=running.run_forever, daemon=True)
    thread.start()
    yield running
    running.call_soon_threadsafe(running.stop)
    thread.join(5)
    running.close()


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return int(answer.status), bytes(answer.read())
    except urllib.error.HTTPError as error:
        return int(error.code), bytes(error.read())


def serve(
    loop: asyncio.AbstractEventLoop, readiness: Mapping[str, bool], timeout: float = 5.0
) -> tuple[StatusServer, int, CollectorRegistry]:
    registry = CollectorRegistry()
    Counter("event_sidecar_probe", "A counter to find.", registry=registry).inc(3)
    server = StatusServer(registry, lambda: readiness, loop, loop_timeout=timeout)
    return server, server.start("127.0.0.1", 0), registry


def test_metrics_health_and_readiness(loop: asyncio.AbstractEventLoop) -> None:
    readiness = {"sources": True, "rules": True, "api": True}
    server, port, _ = serve(loop, readiness)
    try:
        status, body = get(port, "/metrics")
        assert status == 200 and b"event_sidecar_probe_total 3.0" in body
        assert get(port, "/healthz") == (200, b"ok\n")
        status, body = get(port, "/readyz")
        assert status == 200 and orjson.loads(body) == {"ready": True, "checks": readiness}
        readiness["api"] = False
        status, body = get(port, "/readyz")
        assert status == 503
        assert orjson.loads(body)["checks"] == {"sources": True, "rules": True, "api": False}
        assert get(port, "/nothing")[0] == 404
    finally:
        server.close()
    with pytest.raises(urllib.error.URLError):
        get(port, "/healthz")


def test_readiness_leaves_out_the_excluded_checks(loop: asyncio.AbstractEventLoop) -> None:
    """`?exclude=` as on kube-apiserver's `/readyz`: the injected probe leaves out `api` and
    `sources`; unknown names are ignored."""
    readiness = {"sources": False, "sources_readable": True, "rules": True, "api": False}
    server, port, _ = serve(loop, readiness)
    try:
        assert get(port, "/readyz")[0] == 503
        status, body = get(port, "/readyz?exclude=api&exclude=sources&exclude=nothing")
        assert status == 200
        assert orjson.loads(body) == {
            "ready": True,
            "checks": {"sources_readable": True, "rules": True},
        }
        readiness["sources_readable"] = False
        assert get(port, "/readyz?exclude=api&exclude=sources")[0] == 503
    finally:
        server.close()


def test_a_wedged_loop_fails_liveness_and_readiness(loop: asyncio.AbstractEventLoop) -> None:
    server, port, _ = serve(loop, {"rules": True}, timeout=0.3)
    try:
        loop.call_soon_threadsafe(time.sleep, 2.0)  # a blocking call on the loop
        time.sleep(0.1)
        status, body = get(port, "/healthz")
        assert status == 503 and orjson.loads(body)["checks"] == {"event_loop": False}
        status, body = get(port, "/readyz")
        assert status == 503 and orjson.loads(body) == {
            "ready": False,
            "checks": {"event_loop": False},
        }
        time.sleep(2.0)
        assert get(port, "/healthz") == (200, b"ok\n")  # the loop answers again
    finally:
        server.close()


def test_on_loop_runs_on_the_loop_or_at_once_from_it(loop: asyncio.AbstractEventLoop) -> None:
    server = StatusServer(CollectorRegistry(), dict, loop)
    on_loop = server.on_loop(threading.get_ident)
    assert on_loop is not None and on_loop != threading.get_ident()

    async def from_the_loop() -> int | None:
        return server.on_loop(threading.get_ident)  # would wait for itself without the shortcut

    from_itself = asyncio.run_coroutine_threadsafe(from_the_loop(), loop).result(timeout=2)
    assert from_itself == on_loop


def test_a_failing_liveness_check_fails_healthz(loop: asyncio.AbstractEventLoop) -> None:
    liveness = {"tasks": True}
    server = StatusServer(CollectorRegistry(), dict, loop, liveness=lambda: liveness)
    port = server.start("127.0.0.1", 0)
    try:
        assert get(port, "/healthz") == (200, b"ok\n")
        liveness["tasks"] = False
        status, body = get(port, "/healthz")
        assert status == 503 and orjson.loads(body) == {"alive": False, "checks": liveness}
    finally:
        server.close()


def test_a_port_in_use_is_an_oserror(loop: asyncio.AbstractEventLoop) -> None:
    server, port, registry = serve(loop, {})
    try:
        with pytest.raises(OSError):
            StatusServer(registry, dict, loop).start("127.0.0.1", port)
    finally:
        server.close()


def test_the_daemon_loads_no_aiohttp_server_and_no_injection_code() -> None:
    """aiohttp's server (`aiohttp.web`) is memory the daemon has no use for, and its client is
    loaded only once the daemon writes to the API (`KubeSink.sender`); the injection code (its
    pydantic models, jsonpatch) is the webhook's."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, sidecar.cli, sidecar.daemon.service, sidecar.kube; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('aiohttp', 'jsonpatch') "
            "or m.startswith('sidecar.inject'))); "
            "from sidecar.kube.sender import KubeSender; "
            "print(sorted(m for m in sys.modules if m.startswith('aiohttp.web')))",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert done.stdout.split("\n")[:2] == ["[]", "[]"]


def _wakeups(thread: threading.Thread) -> int:
    """How many times `thread` has gone to sleep and been woken (its voluntary context
    switches, from /proc)."""
    status = f"/proc/self/task/{thread.native_id}/status"
    with open(status) as lines:  # noqa: PTH123 - one small /proc file
        for line in lines:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    raise AssertionError(f"no voluntary_ctxt_switches in {status}")


def test_the_idle_server_sleeps_until_a_request_or_close(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """No polling: an idle sidecar's server thread is not woken (`serve_forever` woke every
    0.1 s to look for a shutdown, about half the idle daemon's CPU), and `close` still stops it
    at once."""
    server, port, _ = serve(loop, {"sources": True})
    serving = next(t for t in threading.enumerate() if t.name == "event-sidecar-status")
    try:
        assert get(port, "/healthz") == (200, b"ok\n")
        before = _wakeups(serving)
        time.sleep(1.0)
        assert _wakeups(serving) - before <= 1
        assert get(port, "/healthz") == (200, b"ok\n")
    finally:
        began = time.monotonic()
        server.close()
        assert time.monotonic() - began < 1.0
    assert not serving.is_alive()
    with pytest.raises(urllib.error.URLError):
        get(port, "/healthz")
