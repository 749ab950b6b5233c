"""A real node that cannot start fails with the reason, and leaves the host as it was.

The kubelet here is a stand-in that exits at once (as a kubelet refusing this host's cgroups
would), run against the session's control plane; containerd, the CNI configuration and the pause
image are real, so the teardown after the failed start has real things to undo.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.controlplane import ControlPlane
from tests.realnode import NodeError, RealNode, host_state


def test_a_kubelet_that_exits_fails_the_start_with_its_log(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    for name, code in (("kubelet", 3), ("kube-proxy", 0)):
        stand_in = tmp_path / name
        stand_in.write_text(
            f"#!/bin/sh\necho 'E1206 {name}: cannot start on this host' >&2\nexit {code}\n"
        )
        stand_in.chmod(0o755)
    node = RealNode(control_plane, bin_dir=tmp_path, ready_timeout=30)
    began = time.monotonic()
    with pytest.raises(NodeError) as failed:
        node.start()
    assert time.monotonic() - began < 60
    message = str(failed.value)
    assert re.search(r"kubelet exited with code 3", message), message
    assert "kubelet: cannot start on this host" in message
    assert node.host_before, "the host was recorded before the start failed"
    assert host_state() == node.host_before
