"""AdmissionReview v1 in, AdmissionReview v1 out: the webhook's decisions, without any I/O.

Errors, by who is to blame:

- :class:`MalformedReview`: the request is not an `admission.k8s.io/v1` AdmissionReview with a
  `request.uid` and an object; the server answers HTTP 400, because nothing can be admitted.
- An invalid annotation (:class:`InvalidAnnotations`, :class:`InjectionError`): the pod's owner
  asked for something impossible; the pod is admitted uninjected with a warning that says why.
- Anything else is our bug: the pod is admitted uninjected (fail open) with a warning, because a
  patch the apiserver cannot apply rejects the pod even under `failurePolicy: Ignore`. For the
  same reason every patch is applied to a copy of the pod before it is sent.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import jsonpatch
import orjson

from sidecar.inject.annotations import INJECT_LABEL, STATUS_ANNOTATION, InvalidAnnotations
from sidecar.inject.patch import (
    HostNetworkError,
    InjectionError,
    Operation,
    annotate,
    build_patch,
    is_injected,
)
from sidecar.inject.settings import InjectSettings

API_VERSION: Final = "admission.k8s.io/v1"
SYSTEM_NAMESPACES: Final = frozenset({"kube-system", "kube-public", "kube-node-lease"})
MIRROR_ANNOTATION: Final = "kubernetes.io/config.mirror"
#: Why a pod was admitted without the sidecar; the `reason` label of the skip counter.
SKIP_REASONS: Final = (
    "not_pod_create",
    "system_namespace",
    "mirror_pod",
    "not_opted_in",
    "already_injected",
    "not_pending",
    "invalid_annotations",
    "host_network",
)
#: The status annotation a refused hostNetwork pod gets, so `kubectl get -o yaml` says why.
HOST_NETWORK_STATUS: Final = "skipped: hostNetwork (the sidecar's ports would be the node's)"
_WARNING_MAX: Final = 250
"""The apiserver truncates longer warnings; keep ours readable."""

Patcher = Callable[[Mapping[str, Any], InjectSettings], list[Operation]]


class MalformedReview(ValueError):
    """The body is not an AdmissionReview v1 request this webhook can answer."""


@dataclass(frozen=True)
class Verdict:
    """What to answer for one request; `outcome` is `injected`, `skipped` or `error`."""

    uid: str
    outcome: str
    reason: str = ""
    patch: tuple[Operation, ...] = ()
    warnings: tuple[str, ...] = ()


def read_request(body: object) -> Mapping[str, Any]:
    """The `request` of an AdmissionReview, checked enough to be answered.

    Raises:
        MalformedReview: wrong apiVersion or kind, no `request.uid`, or no object.
    """
    if not isinstance(body, Mapping):
        raise MalformedReview("body is not a JSON object")
    if body.get("apiVersion") != API_VERSION or body.get("kind") != "AdmissionReview":
        raise MalformedReview(f"expected apiVersion {API_VERSION}, kind AdmissionReview")
    request = body.get("request")
    if not isinstance(request, Mapping):
        raise MalformedReview("no request")
    if not isinstance(request.get("uid"), str) or not request["uid"]:
        raise MalformedReview("request.uid is missing")
    if request.get("operation") == "CREATE" and not isinstance(request.get("object"), Mapping):
        raise MalformedReview("request.object is missing")
    return request


def skip_reason(request: Mapping[str, Any]) -> str | None:
    """Why this request must not be mutated, or None when the pod should get the sidecar.

    Only CREATE of Pending pods is mutated: mutating UPDATE made pods undeletable (vault-k8s#500).
    """
    kind = request.get("kind") or {}
    if (
        kind.get("kind") != "Pod"
        or kind.get("group", "") != ""
        or request.get("operation") != "CREATE"
        or request.get("subResource")
    ):
        return "not_pod_create"
    pod: Mapping[str, Any] = request["object"]
    metadata = pod.get("metadata") or {}
    namespace = request.get("namespace") or metadata.get("namespace")
    if namespace in SYSTEM_NAMESPACES:
        return "system_namespace"
    if MIRROR_ANNOTATION in (metadata.get("annotations") or {}):
        return "mirror_pod"
    if (metadata.get("labels") or {}).get(INJECT_LABEL) != "true":
        return "not_opted_in"
    if is_injected(pod):
        return "already_injected"
    phase = (pod.get("status") or {}).get("phase")
    if (pod.get("spec") or {}).get("nodeName") or phase not in (None, "", "Pending"):
        return "not_pending"
    return None


def decide(
    request: Mapping[str, Any], settings: InjectSettings, patcher: Patcher = build_patch
) -> Verdict:
    """The verdict for a well-formed request; never raises (internal errors fail open)."""
    uid = str(request["uid"])
    try:
        reason = skip_reason(request)
        if reason is not None:
            return Verdict(uid, "skipped", reason)
        pod = request["object"]
        try:
            patch = patcher(pod, settings)
        except HostNetworkError as error:
            patch = annotate(pod, {STATUS_ANNOTATION: HOST_NETWORK_STATUS})
            jsonpatch.apply_patch(orjson.loads(orjson.dumps(pod)), patch, in_place=True)
            warning = _warning(f"not injected: {error}")
            return Verdict(uid, "skipped", "host_network", tuple(patch), (warning,))
        except (InvalidAnnotations, InjectionError) as error:
            problems = error.problems if isinstance(error, InvalidAnnotations) else (str(error),)
            warnings = tuple(_warning(f"not injected: {p}") for p in problems)
            return Verdict(uid, "skipped", "invalid_annotations", warnings=warnings)
        # Raises if the apiserver could not apply it either. The copy goes through orjson (the
        # pod is plain JSON) rather than jsonpatch's deepcopy, at a third of the cost.
        jsonpatch.apply_patch(orjson.loads(orjson.dumps(pod)), patch, in_place=True)
    except Exception as error:  # fail open: our bug must not block the pod
        message = _warning(f"internal error, admitted without the sidecar: {error!r}")
        return Verdict(uid, "error", type(error).__name__, warnings=(message,))
    return Verdict(uid, "injected", patch=tuple(patch))


def build_response(verdict: Verdict) -> dict[str, Any]:
    """The AdmissionReview answering `verdict`: always allowed; a base64 JSONPatch if any."""
    response: dict[str, Any] = {"uid": verdict.uid, "allowed": True}
    if verdict.patch:
        response["patchType"] = "JSONPatch"
        raw = orjson.dumps(list(verdict.patch))
        response["patch"] = base64.b64encode(raw).decode("ascii")
    if verdict.warnings:
        response["warnings"] = list(verdict.warnings)
    return {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": response}


def _warning(text: str) -> str:
    """One line, short enough for kubectl to show whole, naming us."""
    line = " ".join(f"event-sidecar: {text}".split())
    return line if len(line) <= _WARNING_MAX else line[: _WARNING_MAX - 3] + "..."
