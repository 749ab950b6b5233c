"""The Kubernetes API sink: writes Events to a real apiserver and looks up involved objects.

This is the only package that imports `kubernetes` (and its transport, `urllib3`), which
`lint-imports` checks, so that the rest of the package (rules, correlation, the Recorder,
`replay`) stays importable and testable without it, and so that the client's models and
exceptions never leak: everything here is translated into the `sidecar.runtime.sinks` vocabulary
(`Unreachable`, `Refused`, `NotFound`) and into `InvolvedObject`s.

One concern per module:

- `config`: loading the client configuration (kubeconfig, in-cluster, `$KUBECONFIG`);
- `transport`: one request through the client's `call_api`, timed, transport errors mapped to
  `Unreachable`; the `Transport` protocol the rest is written against (tests use canned answers);
- `errors`: what an HTTP error answer means (`Refused` causes, `NotFound`; what client-go tries
  again as `Unreachable`: 429, a 5xx with Retry-After, and a 403 soon after an outage);
- `discovery`: which group/version serves a kind, hand-written and cached (the client's dynamic
  discovery writes a cache file to the temporary folder; the root filesystem is read-only);
- `lookup`: an involved object's uid and resourceVersion, cached; its GET as a step, so either
  client can make it;
- `sink`: `KubeSink`, the `Sink`: create, PATCH, ping, resolve;
- `session`: an aiohttp session with the configuration's credentials, and a timed request;
- `sender`: `KubeSender`, the `Sender`: the sink's writes and look-ups from the event loop (the
  daemon's);
- `logs`: `PodLogClient`, the pod log API streamed (the pod log source's edge).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from kubernetes import client as k8s_client

from sidecar.kube.api_sink import KubeSink
from sidecar.kube.config import KubeConfigError, load_configuration
from sidecar.kube.routes import STRATEGIC_MERGE_PATCH
from sidecar.kube.settings import DEFAULT_SETTINGS, KubeSettings
from sidecar.kube.transport import ClientTransport
from sidecar.runtime.metrics import Metrics

if TYPE_CHECKING:
    # Imported when used: it needs aiohttp's client, which `replay` does not pay for.
    from sidecar.kube.podlogs import PodLogClient

USER_AGENT: Final = "kube-event-sidecar/0.1.0"

__all__ = [
    "STRATEGIC_MERGE_PATCH",
    "USER_AGENT",
    "KubeConfigError",
    "KubeSettings",
    "KubeSink",
    "connect",
    "connect_pod_logs",
    "load_configuration",
]


def connect(
    *,
    kubeconfig: str | None,
    context: str | None = None,
    metrics: Metrics,
    settings: KubeSettings = DEFAULT_SETTINGS,
) -> KubeSink:
    """Build a `KubeSink` on a private client: from `kubeconfig` when given; else from the pod's
    service account; else from `$KUBECONFIG` or `~/.kube/config`.

    Raises:
        KubeConfigError: nothing worked; the message lists every attempt and its failure.
    """
    configuration = load_configuration(kubeconfig=kubeconfig, context=context)
    # Retries belong to the Recorder (and only for transport errors): urllib3 must not add its
    # own, hidden ones.
    configuration.retries = False
    # Several threads may call it at once (the daemon's ping and discovery threads, a caller's
    # own): keep a connection for each (urllib3 discards connections beyond the pool's size, and
    # each new one costs a TLS handshake).
    configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize, 64)
    api = k8s_client.ApiClient(configuration)
    api.user_agent = USER_AGENT
    return KubeSink(
        ClientTransport(api, metrics, settings.request_timeout),
        metrics,
        settings,
        configuration=configuration,
        user_agent=USER_AGENT,
    )


def connect_pod_logs(*, kubeconfig: str | None, context: str | None = None) -> PodLogClient:
    """A `PodLogClient` with the same configuration `connect` would load.

    Raises:
        KubeConfigError: as `connect`.
    """
    from sidecar.kube.podlogs import PodLogClient  # noqa: PLC0415 - see the import above

    return PodLogClient(load_configuration(kubeconfig=kubeconfig, context=context), USER_AGENT)
