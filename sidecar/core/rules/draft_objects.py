"""How a drafted rule names the object of a line (`suggest`): which of the written forms the
line uses, as an `object:` mapping. Pure: a decoded line in, the naming out."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sidecar.core.lines.records import ObjectRef, Record, ref_of
from sidecar.core.rules.paths import Key, Select, format_path

#: Lower-case field names that name built-in kinds (`pod=ns/name`, `"node": "n1"`).
KNOWN_KINDS: dict[str, tuple[str, str]] = {
    "pod": ("Pod", "v1"),
    "node": ("Node", "v1"),
    "namespace": ("Namespace", "v1"),
    "service": ("Service", "v1"),
    "svc": ("Service", "v1"),
    "configmap": ("ConfigMap", "v1"),
    "secret": ("Secret", "v1"),
    "serviceaccount": ("ServiceAccount", "v1"),
    "pvc": ("PersistentVolumeClaim", "v1"),
    "persistentvolumeclaim": ("PersistentVolumeClaim", "v1"),
    "pv": ("PersistentVolume", "v1"),
    "persistentvolume": ("PersistentVolume", "v1"),
    "endpoints": ("Endpoints", "v1"),
    "deployment": ("Deployment", "apps/v1"),
    "statefulset": ("StatefulSet", "apps/v1"),
    "daemonset": ("DaemonSet", "apps/v1"),
    "replicaset": ("ReplicaSet", "apps/v1"),
    "job": ("Job", "batch/v1"),
    "cronjob": ("CronJob", "batch/v1"),
    "lease": ("Lease", "coordination.k8s.io/v1"),
    "ingress": ("Ingress", "networking.k8s.io/v1"),
}


_KIND = re.compile(r"[A-Z][A-Za-z0-9]*")


REF_IN_TEXT = re.compile(r"([A-Z][A-Za-z0-9]*)\((?:[a-z0-9](?:[-a-z0-9]*[a-z0-9])?/)?[^()/\s]+\)")


PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


_SELECTABLE = re.compile(r"[A-Za-z0-9][-A-Za-z0-9_.]*")


@dataclass(frozen=True, slots=True)
class Naming:
    """How a rule names the object of a line: the `object:` mapping (as YAML entries), a
    comment, and the object the line names."""

    entries: tuple[tuple[str, str], ...]
    note: str
    #: Written in the message as `Kind(ns/name)`: captured by the group `object`.
    in_message: bool = False


def name_object(record: Record) -> tuple[Naming, tuple[str, str, str]] | None:
    """How a rule can name the object `record` is about, and that object (kind, ns, name)."""
    fields = record.fields
    kind = fields.get("controllerKind")
    if type(kind) is str and kind and type(fields.get("controllerGroup")) is str:
        ref = record.ref(kind) or record.ref("")
        if ref is not None and ref.name:
            return Naming((), "controller-runtime's controllerKind and its reference"), (
                kind,
                ref.namespace,
                ref.name,
            )
    for key in fields:
        if key.endswith(".name") and type(fields[key]) is str and fields[key]:
            # Literal dotted keys of one object (the Java Operator SDK's MDC `resource.name`,
            # `resource.kind`, ...): the object is written out from its parts.
            prefix = key[: -len(".name")]
            kind = fields.get(prefix + ".kind")
            if type(kind) is not str or not _KIND.fullmatch(kind):
                continue
            parts = [
                (written, "{" + prefix + "." + part + "}")
                for written, part in (
                    ("apiVersion", "apiVersion"),
                    ("kind", "kind"),
                    ("name", "name"),
                    ("namespace", "namespace"),
                    ("uid", "uid"),
                )
                if type(fields.get(prefix + "." + part)) is str
            ]
            namespace = fields.get(prefix + ".namespace")
            return Naming(tuple(parts), f"the line's {prefix}.* keys"), (
                kind,
                namespace if type(namespace) is str else "",
                fields[key],
            )
    for path, value in _values(fields):
        written = format_path(path)
        key = path[-1] if type(path[-1]) is str else ""
        ref = ref_of(value)
        if ref is not None and ref.name and ref.kind and _KIND.fullmatch(ref.kind):
            return Naming((("ref", written),), f"{written} carries the kind: {ref.kind}"), _target(
                ref
            )
        if len(path) != 1:
            continue
        if _KIND.fullmatch(key) and ref is not None and ref.name:
            return Naming((("kind", key),), f"the field {key} is named after its kind"), (
                key,
                ref.namespace,
                ref.name,
            )
        known = KNOWN_KINDS.get(key.lower())
        if known is not None and key != "namespace":
            kind_name, version = known
            entries: tuple[tuple[str, str], ...] = (
                ("apiVersion", version),
                ("kind", kind_name),
                ("ref", written),
            )
            if ref is not None and ref.name:
                return Naming(entries, f"{written} holds a {kind_name}"), (
                    kind_name,
                    ref.namespace,
                    ref.name,
                )
            if type(value) is str and value and " " not in value:
                namespace = fields.get("namespace")
                if type(namespace) is str and namespace and kind_name != "Node":
                    entries = (*entries, ("namespace", "{namespace}"))
                    return Naming(entries, f"{written} holds a {kind_name}'s name"), (
                        kind_name,
                        namespace,
                        value,
                    )
                return Naming(entries, f"{written} holds a {kind_name}'s name"), (
                    kind_name,
                    "",
                    value,
                )
    name, namespace = fields.get("name"), fields.get("namespace")
    if type(name) is str and name and type(namespace) is str and namespace:
        entries = (
            ("apiVersion", "example.com/v1"),
            ("kind", "ChangeMe"),
            ("name", "{name}"),
            ("namespace", "{namespace}"),
        )
        return Naming(
            entries, "the line says namespace and name but not the kind: write it here"
        ), ("ChangeMe", namespace, name)
    found = REF_IN_TEXT.search(record.message)
    if found is not None:
        ref = ref_of(found.group())
        if ref is not None:
            return Naming(
                (("ref", "object"),),
                "the message names it as Kind(namespace/name), captured as `object`",
                in_message=True,
            ), _target(ref)
    return None


def _target(ref: ObjectRef) -> tuple[str, str, str]:
    return (ref.kind, ref.namespace, ref.name)


def _values(fields: dict[str, Any]) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Top-level values, then those one mapping down (tracing's `span`), then those of list
    elements chosen by their `kind` or `name` (tracing's `spans[name="..."]`)."""
    for key, value in fields.items():
        yield (key,), value
    for key, value in fields.items():
        if type(value) is dict:
            for inner, deeper in value.items():
                yield (key, _step(inner)), deeper
    for key, value in fields.items():
        if type(value) is not list:
            continue
        for item in value:
            if type(item) is not dict:
                continue
            kind, name = item.get("kind"), item.get("name")
            if type(kind) is str and _SELECTABLE.fullmatch(kind):
                yield (key, Select("kind", kind)), item
            elif type(name) is str and name:
                for inner, deeper in item.items():
                    yield (key, Select("name", name), _step(inner)), deeper


def _step(name: str) -> str:
    return name if PLAIN_NAME.fullmatch(name) else Key(name)


def object_text(naming: Naming) -> str:
    if not naming.entries:
        return "auto"
    return "{" + ", ".join(f"{key}: {quote(value)}" for key, value in naming.entries) + "}"


def quote(value: str) -> str:
    """A YAML scalar that reads back as the very text: JSON's double quotes are YAML's."""
    return json.dumps(value, ensure_ascii=False)
