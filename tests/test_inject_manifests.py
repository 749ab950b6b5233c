"""`event-sidecar inject`: every workload kind, multi-document YAML and JSON, pass-through, and
a second run that changes nothing."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
import yaml

from sidecar.cli import main
from sidecar.inject import INJECT_LABEL, PREFIX, SIDECAR_NAME, InjectSettings
from sidecar.inject.manifests import TEMPLATE_PATHS, InjectReport, inject_text

SETTINGS = InjectSettings(image="example.test/event-sidecar:1")
POD_SPEC = {"containers": [{"name": "controller", "image": "ctl:1"}]}
TEMPLATE = {"metadata": {"labels": {"app": "ctl"}}, "spec": POD_SPEC}
WORKLOADS: dict[str, dict[str, Any]] = {
    "Pod": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ctl"}, "spec": POD_SPEC},
    "ReplicationController": {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": "ctl"},
        "spec": {"template": TEMPLATE},
    },
    **{
        kind: {
            "apiVersion": "apps/v1",
            "kind": kind,
            "metadata": {"name": "ctl"},
            "spec": {"selector": {"matchLabels": {"app": "ctl"}}, "template": TEMPLATE},
        }
        for kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet")
    },
    "Job": {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "ctl"},
        "spec": {"template": {"spec": {**POD_SPEC, "restartPolicy": "Never"}}},
    },
    "CronJob": {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "ctl"},
        "spec": {
            "schedule": "* * * * *",
            "jobTemplate": {"spec": {"template": {"spec": {**POD_SPEC, "restartPolicy": "Never"}}}},
        },
    },
}
PASS_THROUGH = """\
# A ConfigMap is not a workload; its comments and layout survive.
apiVersion: v1
kind: ConfigMap
metadata: {name: rules}   # flow style kept
data:
  rules.yaml: |
    component: x
"""


def template_of(obj: dict[str, Any]) -> dict[str, Any]:
    pointer = TEMPLATE_PATHS[(obj["apiVersion"], obj["kind"])]
    found: dict[str, Any] = jsonpatch.JsonPointer(pointer).resolve(obj) if pointer else obj
    return found


def run(text: str, settings: InjectSettings = SETTINGS) -> tuple[str, InjectReport]:
    report = InjectReport()
    return inject_text(text, settings, report), report


def test_every_kind_is_covered() -> None:
    assert {kind for _, kind in TEMPLATE_PATHS} == set(WORKLOADS)


@pytest.mark.parametrize("kind", sorted(WORKLOADS))
def test_every_workload_kind_gets_the_sidecar_in_its_pod_template(kind: str) -> None:
    out, report = run(yaml.safe_dump(WORKLOADS[kind]))
    [obj] = yaml.safe_load_all(out)
    spec = template_of(obj)["spec"]
    assert [c["name"] for c in spec["initContainers"]] == [SIDECAR_NAME]
    # The default source, the target's own log through the API: the app container is untouched.
    assert spec["containers"] == template_of(WORKLOADS[kind])["spec"]["containers"]
    assert "--pod-log" in spec["initContainers"][0]["args"]
    assert template_of(obj)["metadata"]["annotations"]["prometheus.io/port"] == "9090"
    assert report.injected == 1 and not report.problems
    if kind != "Pod":
        assert obj["metadata"] == WORKLOADS[kind]["metadata"], "only the pod template changes"


def test_multi_document_yaml_keeps_other_documents_byte_for_byte() -> None:
    docs = [yaml.safe_dump(w, sort_keys=False) for w in WORKLOADS.values()]
    text = (
        PASS_THROUGH + "---\n" + "---\n".join(docs) + "--- # trailing comment\n# only a comment\n"
    )
    out, report = run(text)
    assert out.startswith(PASS_THROUGH)
    assert out.endswith("--- # trailing comment\n# only a comment\n")
    objects = [o for o in yaml.safe_load_all(out) if o]
    assert [o["kind"] for o in objects] == ["ConfigMap", *WORKLOADS]
    assert report.injected == len(WORKLOADS)


def test_running_inject_twice_changes_nothing_the_second_time() -> None:
    text = PASS_THROUGH + "---\n" + "---\n".join(yaml.safe_dump(w) for w in WORKLOADS.values())
    once, _ = run(text)
    twice, report = run(once)
    assert twice == once
    assert report.injected == 0


def test_json_input_gives_json_output_and_lists_are_injected_item_by_item() -> None:
    listing = {"apiVersion": "v1", "kind": "List", "items": list(WORKLOADS.values())}
    out, report = run(json.dumps(listing))
    result = json.loads(out)
    assert all(SIDECAR_NAME in json.dumps(template_of(i)) for i in result["items"])
    assert report.injected == len(WORKLOADS)
    again, _ = run(out)
    assert again == out


def test_other_kinds_and_json_pass_through_unchanged() -> None:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {}}
    crd_named_like_a_workload = {"apiVersion": "example.com/v1", "kind": "Deployment", "spec": {}}
    for obj in (service, crd_named_like_a_workload):
        out, report = run(json.dumps(obj))
        assert json.loads(out) == obj and report.injected == 0


def test_opted_out_templates_and_invalid_annotations_are_left_alone() -> None:
    opted_out = json.loads(json.dumps(WORKLOADS["Deployment"]))
    opted_out["spec"]["template"]["metadata"]["labels"][INJECT_LABEL] = "false"
    invalid = json.loads(json.dumps(WORKLOADS["Pod"]))
    invalid["metadata"]["annotations"] = {PREFIX + "log-path": "relative/*.log"}
    text = yaml.safe_dump(opted_out) + "---\n" + yaml.safe_dump(invalid)
    out, report = run(text)
    assert out == text
    assert report.injected == 0
    [problem] = report.problems
    assert problem.startswith("Pod/ctl: not injected:") and "log-path" in problem


def test_the_cli_reads_a_file_or_stdin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump(WORKLOADS["Deployment"]))
    assert main(["inject", "-f", str(path), "--native-sidecar", "false", "--image", "i:2"]) == 0
    from_file = capsys.readouterr().out
    [obj] = yaml.safe_load_all(from_file)
    containers = obj["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["controller", SIDECAR_NAME]
    assert containers[1]["image"] == "i:2"

    monkeypatch.setattr("sys.stdin", io.StringIO(from_file))
    assert main(["inject", "-f", "-", "--native-sidecar", "false"]) == 0
    assert capsys.readouterr().out == from_file


def test_the_cli_fails_on_unreadable_or_invalid_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inject", "-f", str(tmp_path / "missing.yaml")]) == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [unclosed\n")
    assert main(["inject", "-f", str(bad)]) == 2
    invalid = tmp_path / "invalid.yaml"
    pod = dict(WORKLOADS["Pod"], metadata={"name": "p", "annotations": {PREFIX + "colour": "x"}})
    invalid.write_text(yaml.safe_dump(pod))
    assert main(["inject", "-f", str(invalid)]) == 2
    assert "warning: Pod/p: not injected:" in capsys.readouterr().err
