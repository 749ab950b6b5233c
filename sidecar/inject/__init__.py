"""Sidecar injection: the pod patch, the admission webhook and offline manifest injection.

`patch` and `annotations` are pure (dicts in, JSON Patch out); `webhook` is a thin aiohttp server
around `admission`, and `manifests` applies the same patch to pod templates for GitOps.
"""

from sidecar.inject.annotations import (
    INJECT_LABEL,
    PREFIX,
    STATUS_ANNOTATION,
    InvalidAnnotations,
    PodOptions,
    parse_annotations,
)
from sidecar.inject.patch import SIDECAR_NAME, InjectionError, build_patch, is_injected
from sidecar.inject.settings import InjectSettings

__all__ = [
    "INJECT_LABEL",
    "PREFIX",
    "SIDECAR_NAME",
    "STATUS_ANNOTATION",
    "InjectSettings",
    "InjectionError",
    "InvalidAnnotations",
    "PodOptions",
    "build_patch",
    "is_injected",
    "parse_annotations",
]
