"""What the sidecar's ServiceAccount may do, checked the same way for every install path.

One table for the kustomize manifests (manifests/sidecar-rbac) and the Helm chart: each source
needs exactly its grants (Events for every source, pods and pods/log for the pod log source, `get`
on the kinds the rules name), and nothing more is allowed, here or in another namespace. The
answers come from `kubectl auth can-i` against the real apiserver, so they are RBAC's own verdict.
"""

from __future__ import annotations

from collections.abc import Callable

CanI = Callable[..., str]
"""``can_i(verb, resource, *flags)`` -> kubectl's answer, ``"yes"`` or ``"no"``."""

# (why, verb, resource, extra flags): what the sidecar needs, source by source.
NEEDED: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("every source writes core/v1 Events", "create", "events", ()),
    ("every source repeats core/v1 Events", "patch", "events", ()),
    ("events.k8s.io/v1 mode writes Events", "create", "events.events.k8s.io", ()),
    ("events.k8s.io/v1 mode updates a series", "patch", "events.events.k8s.io", ()),
    ("the pod log source reads the container's instance", "get", "pods", ()),
    ("the pod log source streams the log", "get", "pods", ("--subresource=log",)),
    ("look-ups of the example's objects", "get", "resourcequotas", ()),
    ("look-ups of the leader-election Lease", "get", "leases.coordination.k8s.io", ()),
)

# What no source needs: reading or changing Events, listing or changing pods, exec, secrets.
REFUSED: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    *((verb, "events", ()) for verb in ("get", "list", "watch", "update", "delete")),
    *((verb, "pods", ()) for verb in ("list", "watch", "create", "update", "delete")),
    ("create", "pods", ("--subresource=exec",)),
    ("get", "pods", ("--subresource=attach",)),
    ("get", "secrets", ()),
    ("list", "secrets", ()),
    ("get", "configmaps", ()),
)


def assert_sidecar_grants(can_i: CanI, namespace: str, *, pod_logs: bool = True) -> None:
    """Assert the sidecar may do exactly what its sources need in ``namespace`` and no more.

    ``pod_logs=False`` for an install without the pod log grant: pods/log is then refused (`get`
    on pods stays, since the example's look-up rules name pods).
    """
    for why, verb, resource, flags in NEEDED:
        wanted = "no" if not pod_logs and flags == ("--subresource=log",) else "yes"
        assert can_i(verb, resource, *flags, "-n", namespace) == wanted, (why, wanted)
    for verb, resource, flags in REFUSED:
        assert can_i(verb, resource, *flags, "-n", namespace) == "no", (verb, resource, flags)
    # Bound in its namespace only: nothing of it elsewhere.
    for _, verb, resource, flags in NEEDED:
        assert can_i(verb, resource, *flags, "-n", "default") == "no", (verb, resource, "default")
