"""Per-pod injection annotations: their names, and parsing them into validated options.

Every key lives under one prefix, `event-sidecar.kube-event-sidecar.io/`, so the webhook can tell
a typo (an unknown key under the prefix, rejected) from someone else's annotation (ignored). An
invalid value never reaches the patch builder: it raises :class:`InvalidAnnotations`, whose
problems name the annotation and the rule it broke, and the pod is left uninjected.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from typing import Annotated, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Json,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from sidecar.core.validation import error_message, error_path

PREFIX: Final = "event-sidecar.kube-event-sidecar.io/"
INJECT_LABEL: Final = PREFIX + "inject"
"""Pod label that opts a pod in (`"true"`); the webhook's objectSelector matches on it."""
STATUS_ANNOTATION: Final = PREFIX + "status"
"""Written on injection; tells humans (and `kubectl get -o yaml`) that the pod was mutated."""

#: Annotation suffix -> field of :class:`PodOptions`.
_FIELDS: Final = {
    "container": "container",
    "log-path": "log_path",
    "socket": "socket",
    "rules-configmap": "rules_configmap",
    "image": "image",
    "resources": "resources",
    "log-level": "log_level",
    "native-sidecar": "native_sidecar",
}
_IGNORED: Final = frozenset({"inject", "status"})
_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_QUANTITY = r"^(\d+(\.\d+)?|\.\d+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
_SOCKET = re.compile(r"^tcp://(127\.0\.0\.1|localhost|\[::1\]):(\d{1,5})$")
_GLOB_CHARS = frozenset("*?[]")

Quantity = Annotated[str, Field(pattern=_QUANTITY)]
ResourceList = dict[Literal["cpu", "memory", "ephemeral-storage"], Quantity]


class InvalidAnnotations(ValueError):
    """The pod's annotations cannot be honoured; `problems` has one line per broken rule."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = tuple(problems)


class Resources(BaseModel):
    """The `resources` annotation: JSON like `{"requests": {"cpu": "10m"}, "limits": {...}}`."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    requests: ResourceList = {}
    limits: ResourceList = {}

    def to_container(self) -> dict[str, dict[str, str]]:
        """The container's `resources` stanza, without empty sections."""
        sections = (("requests", self.requests), ("limits", self.limits))
        return {k: {str(r): q for r, q in v.items()} for k, v in sections if v}


class PodOptions(BaseModel):
    """The validated annotations of one pod; `None` means "use the cluster-wide setting"."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    container: Annotated[str, Field(pattern=_DNS_LABEL)] | None = None
    log_path: str | None = None
    socket: str | None = None
    rules_configmap: Annotated[str, Field(pattern=_DNS_SUBDOMAIN, max_length=253)] | None = None
    image: Annotated[str, Field(pattern=r"^\S+$", max_length=512)] | None = None
    resources: Json[Resources] | None = None
    log_level: Literal["debug", "info", "warning", "error"] | None = None
    native_sidecar: Literal["auto", "true", "false"] = "auto"

    @field_validator("log_path")
    @classmethod
    def _check_log_path(cls, value: str | None) -> str | None:
        """The directory part becomes a mount path, so it must be absolute, normalised, free of
        glob characters and not `/` itself; only the file name may be a glob."""
        if value is None:
            return None
        directory = posixpath.dirname(value)
        if not value.startswith("/") or posixpath.normpath(value) != value:
            raise ValueError("must be an absolute, normalised path such as /var/log/app/*.log")
        if directory == "/" or not posixpath.basename(value):
            raise ValueError("must name files inside a directory other than /")
        if _GLOB_CHARS & set(directory) or ":" in directory:
            raise ValueError("only the file name may contain glob characters")
        return value

    @field_validator("socket")
    @classmethod
    def _check_socket(cls, value: str | None) -> str | None:
        """Only loopback: the app and the sidecar share the pod's network namespace, and
        nothing outside the pod may write log lines into it."""
        if value is None:
            return None
        match = _SOCKET.match(value)
        if match is None or not 0 < int(match.group(2)) < 65536:
            raise ValueError("must be tcp://127.0.0.1:PORT (loopback only)")
        return value

    @model_validator(mode="after")
    def _check_one_source(self) -> PodOptions:
        """A pod has one log source: a file or a socket, not both."""
        if self.log_path is not None and self.socket is not None:
            raise ValueError(f"{PREFIX}log-path and {PREFIX}socket are mutually exclusive")
        return self


def parse_annotations(annotations: Mapping[str, str] | None) -> PodOptions:
    """Validate the pod's annotations under :data:`PREFIX` into :class:`PodOptions`.

    Raises:
        InvalidAnnotations: an unknown key under the prefix, or a value that breaks its rule.
    """
    values: dict[str, str] = {}
    problems: list[str] = []
    for key, value in (annotations or {}).items():
        if not key.startswith(PREFIX) or key[len(PREFIX) :] in _IGNORED:
            continue
        name = _FIELDS.get(key[len(PREFIX) :])
        if name is None:
            problems.append(f"{key}: unknown annotation (known: {', '.join(sorted(_FIELDS))})")
        elif not isinstance(value, str):
            problems.append(f"{key}: must be a string")
        else:
            values[name] = value
    if problems:
        raise InvalidAnnotations(problems)
    try:
        return PodOptions.model_validate(values)
    except ValidationError as error:
        raise InvalidAnnotations([_describe(e) for e in error.errors()]) from error


def _describe(error: ErrorDetails) -> str:
    """One pydantic error as `<annotation key>: <message>` (the whole-model rule has no key)."""
    loc = error_path(error["loc"])
    message = error_message(error)
    if not loc:
        return message
    suffix = {v: k for k, v in _FIELDS.items()}.get(str(loc[0]), str(loc[0]))
    where = ".".join(str(p) for p in loc[1:])
    return f"{PREFIX}{suffix}" + (f" ({where})" if where else "") + f": {message}"
