"""The normalised log record every decoder produces, whatever the line's format.

Records are the boundary between decoding and rules: rules never see raw bytes or know which
format a line was in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

#: Canonical level names. Decoders map every spelling onto one of these so that a rule written
#: `level: warning` matches klog's `W`, logrus' `warning` and slog's `WARN` alike.
LEVELS = ("debug", "info", "warning", "error", "fatal")
#: The level of a line whose level the decoder could not read (a number or word it does not
#: know). Deliberately not one of `LEVELS`: no `level:` condition names it, so such a line never
#: passes for `info` (or anything else) by accident.
UNKNOWN_LEVEL = "unknown"


# Not frozen: built per line (or per Event), where a frozen dataclass costs several times more
# (its __init__ goes through object.__setattr__). Immutable by convention: nothing assigns to it,
# which is what makes `unsafe_hash` safe (it is a key in maps, as the frozen one was).
@dataclass(slots=True, unsafe_hash=True)
class ObjectRef:
    """A Kubernetes object named in a log line: `Kind: {name, namespace}`, `ns/name`, ...

    `kind`, `api_version` and `uid` are set when the line's reference carries them (empty
    otherwise): `Kind(ns/name)`, kube-rs's `Kind.version.group/name.ns`, a full object reference.
    They are not compared: a reference is its name and namespace, as it always was here.
    """

    name: str
    namespace: str = ""
    kind: str = field(default="", compare=False)
    api_version: str = field(default="", compare=False)
    uid: str = field(default="", compare=False)


# Not frozen: built per line (or per Event), where a frozen dataclass costs several times more
# (its __init__ goes through object.__setattr__). Immutable by convention: nothing assigns to it
# once its decoder has returned it (a decoder sets the rare `missing` right after building it).
@dataclass(slots=True)
class Record:
    """One decoded log line.

    `fields` holds every key the line carried except the ones lifted into the attributes
    (time, level, message, logger), with their original JSON types.
    """

    message: str
    level: str = "info"
    #: V-level for info lines (zap `Level(-2)` -> 2, klog JSON `"v": 4` -> 4); 0 otherwise.
    verbosity: int = 0
    #: Seconds since the epoch, or None when the line had no readable time.
    time: float | None = None
    #: The line had a time outside what an Event can carry (years 1-9999): `time` is None and
    #: the read time stands in; counted in `event_sidecar_lines_time_out_of_range_total`.
    time_out_of_range: bool = False
    logger: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    #: Which decoder produced the record (`json`, `zap-console`, `klog`, `logfmt`, ...).
    format: str = ""
    #: What the line did not give, of `time`, `level` and `message`, in that order: the record
    #: holds a stand-in (no time, so the read time and a clock-based Event name; `info`; an
    #: empty message). Empty for nearly every line. A time out of range is not listed here
    #: (`time_out_of_range` is), nor is a level given but not understood (that is
    #: `UNKNOWN_LEVEL`). Callers count it, so that a log whose time key is not a known one
    #: does not quietly get Event names that change on every replay.
    missing: tuple[str, ...] = ()

    def ref(self, key: str) -> ObjectRef | None:
        """The object reference held by field `key`; `""` means the top-level pair of
        `namespace` and `name` fields controller-runtime adds to every reconcile line.

        Looked up on demand rather than at decode time: only a matched line's rule needs one.
        """
        fields = self.fields
        if key == "":
            # The line's own top-level keys: a `kind` or `uid` there is not this object's.
            name = fields.get("name")
            if type(name) is not str or not name:
                return None
            namespace = fields.get("namespace")
            return ObjectRef(name, namespace if type(namespace) is str else "")
        value = fields.get(key)
        if type(value) is dict:  # the common case, inlined: this runs per matched line
            return _ref_of(value)
        return ref_of(value) if type(value) is str else None


def ref_of(value: Any) -> ObjectRef | None:
    """The object reference a value holds, in the forms controllers write:

    - `{name, namespace}` (controller-runtime, klog JSON), with `kind`, `apiVersion` and `uid`
      when the object also has them (an `ObjectReference`, kopf's `object`);
    - `namespace/name` (klog's `KObj`);
    - `Kind(namespace/name)` and `Kind(name)`;
    - kube-rs's `ObjectRef` display, `Kind.version.group/name.namespace` (kube-runtime's
      `impl Display for ObjectRef`: the group is empty for the core group, `.namespace` is left
      out for a cluster-scoped object). A name may hold dots, a namespace never does, so the
      namespace is after the last dot, except for the built-in cluster-scoped kinds.
    """
    if type(value) is dict:
        return _ref_of(value)
    if type(value) is not str or ("/" not in value and "(" not in value):
        return None
    if _NAMESPACED_NAME.fullmatch(value):
        # klog's KObj renders `namespace/name`.
        namespace, _, name = value.partition("/")
        return ObjectRef(name, namespace)
    found = _KIND_PARENS.fullmatch(value)
    if found is not None:
        kind, namespace, name = found.groups()
        return ObjectRef(name, namespace or "", kind)
    found = _KUBE_RS.fullmatch(value)
    if found is not None:
        kind, version, group, rest = found.groups()
        name, namespace = rest, ""
        if kind not in CLUSTER_SCOPED_KINDS and "." in rest:
            name, _, namespace = rest.rpartition(".")
        return ObjectRef(name, namespace, kind, f"{group}/{version}" if group else version)
    return None


_KIND_PARENS = re.compile(
    r"([A-Z][A-Za-z0-9]*)\((?:([a-z0-9](?:[-a-z0-9]*[a-z0-9])?)/)?([^()/\s]+)\)"
)
_KUBE_RS = re.compile(
    r"([A-Z][A-Za-z0-9]*)\.(v[0-9]+(?:(?:alpha|beta)[0-9]+)?)\."
    r"([a-z0-9](?:[-a-z0-9.]*[a-z0-9])?)?/([^/\s]+)"
)
#: Built-in kinds that have no namespace: their kube-rs references never end in `.namespace`,
#: so a dot in their names is part of the name (`CustomResourceDefinition.v1.apiextensions.k8s.io/
#: things.example.com`).
CLUSTER_SCOPED_KINDS = frozenset(
    (
        "APIService",
        "CertificateSigningRequest",
        "ClusterRole",
        "ClusterRoleBinding",
        "CSIDriver",
        "CSINode",
        "CustomResourceDefinition",
        "FlowSchema",
        "IngressClass",
        "MutatingWebhookConfiguration",
        "Namespace",
        "Node",
        "PersistentVolume",
        "PriorityClass",
        "PriorityLevelConfiguration",
        "RuntimeClass",
        "StorageClass",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "ValidatingWebhookConfiguration",
        "VolumeAttachment",
    )
)


_NAMESPACED_NAME = re.compile(
    r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[a-zA-Z0-9]([-a-zA-Z0-9.:_]*[a-zA-Z0-9])?"
)


def _ref_of(mapping: dict[str, Any]) -> ObjectRef | None:
    """`{name, namespace}` as controller-runtime and klog JSON log object references, with
    `kind`, `apiVersion` and `uid` when they are there."""
    name = mapping.get("name")
    if type(name) is not str or not name:
        return None
    namespace = mapping.get("namespace")
    if len(mapping) <= 2:  # controller-runtime's {name, namespace}: nothing more to read
        return ObjectRef(name, namespace if type(namespace) is str else "")
    kind, api_version, uid = mapping.get("kind"), mapping.get("apiVersion"), mapping.get("uid")
    return ObjectRef(
        name,
        namespace if type(namespace) is str else "",
        kind if type(kind) is str else "",
        api_version if type(api_version) is str else "",
        uid if type(uid) is str else "",
    )


def text_of(value: Any) -> str:
    """The text a value is compared and rendered as: JSON spelling for everything but strings.

    So that a rule's `count: 3` matches both the JSON number 3 and logfmt's `count=3`, and
    `true` is not rendered as Python's `True`.
    """
    if type(value) is str:
        return value
    return orjson.dumps(value).decode()
