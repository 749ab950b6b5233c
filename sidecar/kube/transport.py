"""One HTTP request to the apiserver through the client's plain `call_api`, and its answer.

Everything above this module (writes, discovery, look-ups) speaks to a `Transport`, so that it
can be tested on canned answers; `ClientTransport` is the real one (auth, TLS and proxy from the
client's configuration). Any HTTP answer comes back as an `Answer`, whatever its status; only
the absence of one (connection refused, TLS failure, timeout) raises, as `Unreachable`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

import urllib3
from kubernetes import client as k8s_client

from sidecar.runtime.metrics import Metrics
from sidecar.runtime.sinks import Unreachable

log = logging.getLogger(__name__)

JSON: Final = "application/json"


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    #: The Retry-After header in seconds, when a 429 or a 5xx has one (API Priority and
    #: Fairness; an apiserver shutting down); the `EventRateLimit` admission plugin's 429 has
    #: none. See `retry_after`.
    retry_after: float | None = None

    def json(self) -> Any:
        return json.loads(self.body)


class Transport(Protocol):
    """Sends one request; `verb` names it for the latency metric (create, patch, get, ...)."""

    @property
    def server(self) -> str: ...

    def request(
        self, verb: str, method: str, path: str, headers: dict[str, str], body: Any = None
    ) -> Answer:
        """Any HTTP answer, whatever its status.

        Raises:
            Unreachable: no HTTP answer.
        """
        ...

    def close(self) -> None: ...


def get(transport: Transport, verb: str, path: str, accept: str) -> Answer:
    """A plain GET, any status returned as is."""
    return transport.request(verb, "GET", path, {"Accept": accept})


def send(
    transport: Transport, verb: str, method: str, path: str, *, body: Any, content_type: str
) -> Answer:
    """A write with a JSON body, any status returned as is."""
    headers = {"Accept": JSON, "Content-Type": content_type}
    return transport.request(verb, method, path, headers, body)


class ClientTransport:
    """Requests through a private `kubernetes.client.ApiClient`, each timed in
    `api_latency{verb, result}` (result: the HTTP status code, or `unreachable`).

    Deliberately not through the generated `CoreV1Api`: its module (413 validated methods, of
    which we would use two) costs about 21 MiB of memory, a quarter of the daemon's, and it
    re-serializes bodies through its models.
    """

    def __init__(self, api: k8s_client.ApiClient, metrics: Metrics, timeout: float) -> None:
        self._api = api
        self._metrics = metrics
        self._timeout = timeout

    @property
    def server(self) -> str:
        """The API server's URL."""
        return str(self._api.configuration.host)

    def close(self) -> None:
        """Close the client's connection pool."""
        self._api.close()  # type: ignore[no-untyped-call]

    def request(
        self, verb: str, method: str, path: str, headers: dict[str, str], body: Any = None
    ) -> Answer:
        def call() -> Any:
            request = self._api.param_serialize(
                method=method,
                resource_path=path,
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            return self._api.call_api(*request, _request_timeout=self._timeout)

        return self._timed(verb, call)

    def _timed(self, verb: str, call: Callable[[], Any]) -> Answer:
        result = "unreachable"
        began = time.perf_counter()
        try:
            try:
                response = call()
            except k8s_client.ApiException as error:
                if not error.status:
                    # The client reports TLS failures as an ApiException with status 0.
                    raise Unreachable(f"{verb}: {error.reason}") from error
                status = int(error.status)
                answer = Answer(status, _as_bytes(error.body), retry_after(status, error.headers))
            except (urllib3.exceptions.HTTPError, OSError) as error:
                raise Unreachable(f"{verb}: {type(error).__name__}: {error}") from error
            else:
                status = int(response.status)
                answer = Answer(
                    status, _as_bytes(response.read()), retry_after(status, response.headers)
                )
            result = str(answer.status)
            log.debug("%s answered %d", verb, answer.status)
            return answer
        finally:
            self._metrics.api_latency.labels(verb, result).observe(time.perf_counter() - began)


def retry_after(status: int, headers: Any) -> float | None:
    """Retry-After in seconds (the apiserver sends whole seconds) of a 429 or a 5xx, the answers
    client-go's REST client honours it on (`rest/with_retry.go`, `checkWait`); else None."""
    if headers is None or not (status == 429 or status >= 500):
        return None
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _as_bytes(data: Any) -> bytes:
    if data is None:
        return b""
    if isinstance(data, bytes):
        return data
    return str(data).encode("utf-8", "replace")
