"""Which Events API to write to: `auto` asks discovery and RBAC, as a modern controller would.

events.k8s.io/v1 is chosen when the apiserver serves it and a SelfSubjectAccessReview says this
identity may `create` and `patch` `events.events.k8s.io` in the namespace it is asked about;
otherwise core/v1, which every cluster serves. Access reviews are allowed to every authenticated
user (ClusterRole `system:basic-user`), so asking needs no extra RBAC.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from sidecar.kube.errors import describe
from sidecar.kube.transport import JSON, Transport, get, send
from sidecar.model import EventsApi
from sidecar.runtime.sinks import Unreachable

log = logging.getLogger(__name__)

GROUP: Final = "events.k8s.io"
_NAMESPACE_FILE: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_ACCESS_REVIEWS: Final = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"


def own_namespace(environ: Mapping[str, str] | None = None) -> str:
    """The namespace to ask about: `$POD_NAMESPACE`, else the service account's, else default
    (the sidecar reports first of all about objects in its own pod's namespace)."""
    env = os.environ if environ is None else environ
    if env.get("POD_NAMESPACE"):
        return env["POD_NAMESPACE"]
    try:
        return _NAMESPACE_FILE.read_text().strip() or "default"
    except OSError:
        return "default"


def choose_events_api(transport: Transport, namespace: str) -> tuple[EventsApi, str]:
    """events.k8s.io/v1 when served and allowed in `namespace`, else v1; and why (for the log).

    Never raises: when the apiserver cannot be asked, core/v1 is the safe answer.
    """
    try:
        answer = get(transport, "discover", f"/apis/{GROUP}/v1", JSON)
        if answer.status != 200:
            return "v1", f"{GROUP}/v1 is not served ({describe(answer)})"
        for verb in ("create", "patch"):
            if not _allowed(transport, verb, namespace):
                return "v1", f"not allowed to {verb} {GROUP} events in namespace {namespace}"
    except Unreachable as error:
        return "v1", f"cannot ask the apiserver: {error}"
    return "events.k8s.io/v1", f"served, and create and patch allowed in namespace {namespace}"


def _allowed(transport: Transport, verb: str, namespace: str) -> bool:
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {
            "resourceAttributes": {
                "group": GROUP,
                "resource": "events",
                "verb": verb,
                "namespace": namespace,
            }
        },
    }
    answer = send(transport, "review", "POST", _ACCESS_REVIEWS, body=review, content_type=JSON)
    if answer.status >= 300:
        log.debug("access review answered %s", describe(answer))
        return False
    try:
        return bool(answer.json().get("status", {}).get("allowed"))
    except (ValueError, AttributeError):
        return False
