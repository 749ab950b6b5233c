"""The Kubernetes sink's timeouts, cache lifetimes and sizes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class KubeSettings:
    #: Seconds for a whole request (connect plus answer); a timeout is `Unreachable`.
    request_timeout: float = 10.0
    #: How long discovery answers (groups, versions, resource lists) are reused.
    discovery_ttl: float = 600.0
    #: How long an object's look-up (uid, resourceVersion, or forbidden / not found) is reused.
    #: Short, so a deleted and re-created object soon gets its new uid.
    lookup_ttl: float = 30.0
    #: A kind missing from cached discovery triggers a fresh discovery (a CRD installed later),
    #: at most this often.
    rediscover_interval: float = 30.0
    #: Entries per cache (discovery documents; object look-ups).
    cache_size: int = 2048
    #: Seconds after the API was last out of reach (no answer, or a 5xx), and after the start,
    #: during which a 403 to an Event write is tried again instead of counted as `forbidden`.
    #: A kube-apiserver that just (re)started answers 403 to what RBAC allows until its
    #: RoleBinding caches are filled (a few seconds; more on a loaded node), and a sidecar may
    #: start before the RoleBinding applied with it is seen. Bounded, so that a RoleBinding
    #: really missing is counted (`forbidden`) this long, plus one retry interval, after the
    #: API was last out of reach.
    forbidden_grace: float = 30.0


DEFAULT_SETTINGS: Final = KubeSettings()
