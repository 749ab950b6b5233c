"""hostNetwork pods are refused injection: the sidecar's ports would be the node's.

An injected hostNetwork pod listened on the node's 0.0.0.0:9090 and, in socket mode, opened a port
on the node's loopback that any process on the node could use to forge Events.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
import trustme
import yaml

from sidecar.cli import main
from sidecar.inject.admission import HOST_NETWORK_STATUS, decide
from sidecar.inject.annotations import PREFIX, STATUS_ANNOTATION
from sidecar.inject.patch import HostNetworkError, build_patch
from sidecar.inject.settings import InjectSettings
from tests.test_webhook import Server, decoded_patch, start
from tests.webhook_helpers import admission_review, opted_in_pod


def host_network_pod(**annotations: str) -> dict[str, Any]:
    pod = opted_in_pod(**annotations)
    pod["spec"]["hostNetwork"] = True
    return pod


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    srv, stop, task = await start(tmp_path, trustme.CA())
    yield srv
    await srv.session.close()
    stop.set()
    await task


@pytest.mark.parametrize("annotations", [{}, {PREFIX + "socket": "tcp://127.0.0.1:5170"}])
async def test_the_webhook_refuses_with_a_warning_an_annotation_and_a_count(
    server: Server, annotations: dict[str, str]
) -> None:
    review = admission_review(host_network_pod(**annotations))
    answer = await server.review(review)
    response = answer["response"]
    assert response["allowed"] is True
    assert response["warnings"][0].startswith("event-sidecar: not injected: hostNetwork pods")
    pod = jsonpatch.apply_patch(review["request"]["object"], decoded_patch(answer))
    assert pod["metadata"]["annotations"][STATUS_ANNOTATION] == HOST_NETWORK_STATUS
    assert [c["name"] for c in pod["spec"]["containers"]] == ["controller"]
    assert "initContainers" not in pod["spec"]
    assert server.sample("event_sidecar_inject_skipped_total", reason="host_network") == 1
    assert server.sample("event_sidecar_inject_injected_total") == 0


def test_a_pod_on_its_own_network_is_still_injected() -> None:
    pod = host_network_pod()
    pod["spec"]["hostNetwork"] = False
    verdict = decide(admission_review(pod)["request"], InjectSettings(image="i:1"))
    assert verdict.outcome == "injected"


def test_build_patch_refuses() -> None:
    pod = host_network_pod()
    before = copy.deepcopy(pod)
    with pytest.raises(HostNetworkError, match="hostNetwork pods are not injected"):
        build_patch(pod, InjectSettings(image="i:1"))
    assert pod == before


def test_offline_inject_leaves_the_workload_alone_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    template = host_network_pod()
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "ctl"},
        "spec": {"template": {"metadata": template["metadata"], "spec": template["spec"]}},
    }
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump(deployment))
    assert main(["inject", "-f", str(path)]) == 2
    captured = capsys.readouterr()
    assert yaml.safe_load(captured.out) == deployment
    assert "warning: Deployment/ctl: not injected: hostNetwork pods" in captured.err
