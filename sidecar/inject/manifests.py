"""`event-sidecar inject`: the webhook's patch, applied offline to manifests for GitOps.

Workloads (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job,
CronJob) get the same JSON Patch the webhook would send, applied with `jsonpatch` to their pod
template; every other document passes through untouched. The output keeps the input's format:

- YAML: documents are split on `---` lines, like kubectl does; a document that is not changed is
  written back byte for byte (comments included), a changed one is re-serialised;
- JSON: one object (a `List`'s items are injected one by one), written with two-space indents.

So running `inject` on its own output changes nothing: injected templates yield empty patches.
A template the owner opted out (label `...inject: "false"`) or whose annotations are invalid is
left as it is and reported in `InjectReport.problems`.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import jsonpatch
import yaml

from sidecar.inject.annotations import INJECT_LABEL, InvalidAnnotations
from sidecar.inject.patch import InjectionError, build_patch
from sidecar.inject.settings import InjectSettings

#: (apiVersion, kind) -> JSON Pointer of the pod template ("" for a Pod itself).
TEMPLATE_PATHS: Final[Mapping[tuple[str, str], str]] = {
    ("v1", "Pod"): "",
    ("v1", "ReplicationController"): "/spec/template",
    ("apps/v1", "Deployment"): "/spec/template",
    ("apps/v1", "StatefulSet"): "/spec/template",
    ("apps/v1", "DaemonSet"): "/spec/template",
    ("apps/v1", "ReplicaSet"): "/spec/template",
    ("batch/v1", "Job"): "/spec/template",
    ("batch/v1", "CronJob"): "/spec/jobTemplate/spec/template",
}
_DOCUMENT_SEPARATOR = re.compile(r"^---[ \t]*(?:#.*)?$\n?", re.MULTILINE)


@dataclass
class InjectReport:
    """What one run did: documents injected, and one line per document left alone for cause."""

    injected: int = 0
    problems: list[str] = field(default_factory=list)


def inject_text(text: str, settings: InjectSettings, report: InjectReport) -> str:
    """Inject every workload in `text` (multi-document YAML, or JSON); return the new text."""
    if text.lstrip().startswith(("{", "[")):
        data = json.loads(text)
        return (
            json.dumps(inject_object(data, settings, report), indent=2, ensure_ascii=False) + "\n"
        )
    return "".join(_inject_yaml_document(doc, settings, report) for doc in _split_yaml(text))


def inject_object(obj: Any, settings: InjectSettings, report: InjectReport) -> Any:
    """`obj` with the sidecar in its pod template (a new object), or `obj` itself unchanged."""
    if not isinstance(obj, dict):
        return obj
    if obj.get("kind") == "List" and isinstance(obj.get("items"), list):
        items = [inject_object(item, settings, report) for item in obj["items"]]
        unchanged = all(new is old for new, old in zip(items, obj["items"], strict=True))
        return obj if unchanged else {**obj, "items": items}
    pointer = TEMPLATE_PATHS.get((str(obj.get("apiVersion")), str(obj.get("kind"))))
    if pointer is None:
        return obj
    template = jsonpatch.JsonPointer(pointer).resolve(obj, None) if pointer else obj
    if not isinstance(template, dict) or _opted_out(template):
        return obj
    try:
        patch = build_patch(template, settings)
    except (InvalidAnnotations, InjectionError) as error:
        report.problems.append(f"{obj.get('kind')}/{_name(obj)}: not injected: {error}")
        return obj
    if not patch:
        return obj
    report.injected += 1
    moved = [{**op, "path": pointer + op["path"]} for op in patch]
    return jsonpatch.apply_patch(obj, moved)


def _opted_out(template: Mapping[str, Any]) -> bool:
    labels = (template.get("metadata") or {}).get("labels") or {}
    return bool(labels.get(INJECT_LABEL) == "false")


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", "<unnamed>"))


def _split_yaml(text: str) -> list[str]:
    """The documents of a YAML stream, each with the `---` line that opened it."""
    starts = [m.start() for m in _DOCUMENT_SEPARATOR.finditer(text)]
    bounds = [0, *[s for s in starts if s > 0], len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds) if a < b]


def _inject_yaml_document(doc: str, settings: InjectSettings, report: InjectReport) -> str:
    """One YAML document: the same text when nothing changes, re-serialised otherwise."""
    data = yaml.safe_load(
        _DOCUMENT_SEPARATOR.sub("", doc, count=1) if doc.startswith("---") else doc
    )
    injected = inject_object(data, settings, report)
    if injected is data:
        return doc
    header = "---\n" if doc.startswith("---") else ""
    body = yaml.safe_dump(injected, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return header + body
