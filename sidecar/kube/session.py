"""An aiohttp session to the apiserver with the client's credentials, and requests through it.

The pod log stream (`logs`) and the daemon's Event writes (`sender`) go through aiohttp on the
event loop. Authentication and TLS come from the client's `Configuration` (the pod's service
account token, re-read when it rotates, or a kubeconfig's certificates), so every way of
connecting `config` supports works the same for them as for the blocking client.

Hand-written on aiohttp rather than through the client's own asyncio package (`kubernetes.aio`):
on one real apiserver, with 8 POSTs in flight, `kubernetes.aio`'s `call_api` spends about 0.69 ms
of CPU per Event (its `param_serialize` walks and re-serializes the body, and its requests go
through `aiohttp_retry`), as much as the blocking client, against about 0.21 ms for a plain
aiohttp request with an orjson body (`bench/clients.py`). Writing Events is the daemon's hot path.
"""

from __future__ import annotations

import logging
import ssl
import time
from typing import Any

import aiohttp
from kubernetes import client as k8s_client

from sidecar.kube.transport import Answer, retry_after
from sidecar.runtime.metrics import Metrics
from sidecar.runtime.sinks import Unreachable

log = logging.getLogger(__name__)


def ssl_context(configuration: k8s_client.Configuration) -> ssl.SSLContext | bool:
    """The configuration's TLS: its CA and client certificate; False when it turns checks off."""
    if not configuration.verify_ssl:
        return False
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file)
    return context


def auth_headers(configuration: k8s_client.Configuration, user_agent: str) -> dict[str, str]:
    """The User-Agent and the configuration's credentials as headers. Asked for each request:
    the in-cluster loader's hook re-reads a rotated token file."""
    headers = {"User-Agent": user_agent}
    settings: dict[str, Any] = dict(configuration.auth_settings())
    for setting in settings.values():
        if setting["in"] == "header" and setting["value"]:
            headers[setting["key"]] = setting["value"]
    return headers


def open_session(configuration: k8s_client.Configuration, *, limit: int) -> aiohttp.ClientSession:
    """A session on the configuration's server, at most `limit` connections (kept alive)."""
    connector = aiohttp.TCPConnector(ssl=ssl_context(configuration), limit=limit)
    return aiohttp.ClientSession(base_url=configuration.host.rstrip("/"), connector=connector)


async def timed_request(
    session: aiohttp.ClientSession,
    metrics: Metrics,
    verb: str,
    method: str,
    path: str,
    *,
    headers: dict[str, str],
    body: bytes | None,
    timeout: aiohttp.ClientTimeout,
) -> Answer:
    """One request, timed in `api_latency{verb, result}` (result: the status, or `unreachable`);
    any HTTP answer comes back as an `Answer`.

    Raises:
        Unreachable: no answer (connection refused or lost, TLS failure, timeout).
    """
    result = "unreachable"
    began = time.perf_counter()
    try:
        try:
            async with session.request(
                method, path, data=body, headers=headers, timeout=timeout
            ) as response:
                status = response.status
                answer = Answer(
                    status, await response.read(), retry_after(status, response.headers)
                )
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            raise Unreachable(f"{verb}: {type(error).__name__}: {error}") from error
        result = str(status)
        log.debug("%s answered %d", verb, status)
        return answer
    finally:
        metrics.child(metrics.api_latency, verb, result).observe(time.perf_counter() - began)
