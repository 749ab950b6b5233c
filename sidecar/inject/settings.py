"""Cluster-wide injection settings, shared by the webhook and the offline `inject` command.

Per-pod annotations (see `sidecar.inject.annotations`) override most of these for one pod; the
defaults are chosen so that opting a pod in with the label alone yields a working, cheap and
`restricted`-compliant sidecar.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sidecar import __version__

DEFAULT_IMAGE = f"ghcr.io/kube-event-sidecar/event-sidecar:{__version__}"


def _default_resources() -> dict[str, dict[str, str]]:
    """Small requests so the sidecar fits beside any controller; a memory limit only, because a
    CPU limit throttles the tailer into lag while a leak must still be contained.

    The daemon's resident set is about 55 MiB idle and 64 MiB at 10,000 lines/s with the API
    sink (BENCHMARKS.md, memory), so the request covers the idle footprint with room, and the
    limit leaves room for bursts without letting a leak take the node.
    """
    return {"requests": {"cpu": "10m", "memory": "96Mi"}, "limits": {"memory": "192Mi"}}


@dataclass(frozen=True)
class InjectSettings:
    """What every injected sidecar gets unless the pod's annotations say otherwise."""

    image: str = DEFAULT_IMAGE
    """The sidecar image; pin it by digest in production so every pod runs the same build."""

    rules_configmap: str = "event-sidecar-rules"
    """ConfigMap (in the pod's namespace) whose `rules.yaml` key holds the rules."""

    native_sidecar: bool = True
    """Inject as a native sidecar (an init container with `restartPolicy: Always`). Native
    sidecars exist since Kubernetes 1.29 (GA in 1.33) and let Jobs complete; turn this off only
    for older clusters. A pod's `native-sidecar` annotation overrides it."""

    log_path: str | None = None
    """Glob of the controller's log files when the pod names neither a log path nor a socket;
    its directory becomes the shared `emptyDir` mount. None (the default): the sidecar follows the
    target container's own log through the pod log API, which needs no change to the controller."""

    log_level: str = "info"
    """The sidecar's own log level (`--log-level`)."""

    metrics_port: int = 9090
    """First port tried for the sidecar's `/metrics`; the next free one is used when a container
    of the pod already declares it, because all containers share the pod's network namespace."""

    resources: dict[str, dict[str, str]] = field(default_factory=_default_resources)
    """Container resources (requests and limits), unless the pod's `resources` annotation says."""

    run_as_user: int = 65532
    """UID and GID of the sidecar: non-zero for the `restricted` Pod Security Standard, and the
    image's own `USER` (distroless `nonroot`)."""

    log_volume_size_limit: str = "256Mi"
    """`sizeLimit` of the shared log `emptyDir`, so a chatty controller cannot fill the node."""
